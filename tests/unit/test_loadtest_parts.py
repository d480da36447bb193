"""The load tester's pure parts: scenario files refused with line and reason, schedules, coverage,
fault accounting, the reconnect policy."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from load_tests.judge.coverage import Coverage
from load_tests.judge.detection import account, first_sightings
from load_tests.scenario import loading as sc
from load_tests.scenario import model
from load_tests.scenario.schedule import build, deal, shifted
from load_tests.users.sim_user import reconnect_delay

GOOD = """\
name = "t"
candidates = 40
proctors = 4
exam_s = 60

[arrival]
curve = "ramp"
ramp_s = 10

[faults]
camera_loss = 2
"""


def test_every_shipped_scenario_loads() -> None:
    names = sorted(p.stem for p in sc.SCENARIO_DIR.glob("*.toml"))
    assert {"smoke", "exam-600", "exam-5000", "soak-10k", "demo"} <= set(names)
    exam = sc.load("exam-600")
    assert (exam.candidates, exam.proctors, exam.token_ttl_s, exam.arrival.ramp_s) == (600, 40, 120, 60)
    assert (exam.faults.recording_drop, exam.faults.recording_fail, exam.faults.camera_loss) == (14, 3, 20)
    assert exam.churn.share == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("change", "line", "reason"),
    [
        (("candidates = 40", "candidates = 40\ncandidatez = 3"), 3, "candidatez: unknown key"),
        (("camera_loss = 2", "camera_loss = -2"), 11, "faults.camera_loss: must not be negative"),
        (("ramp_s = 10", "ramp_s = 90"), 8, "arrival.ramp_s: the ramp (90 s) is longer than the exam (60 s)"),
        (('curve = "ramp"', 'curve = "sudden"'), 7, "arrival.curve: must be one of all, ramp, waves"),
        (("proctors = 4", "proctors = 4.5"), 3, "proctors: must be an integer"),
        (("exam_s = 60", "exam_s = "), 4, "not valid TOML"),
    ],
)
def test_bad_scenarios_are_refused_with_line_and_reason(
    change: tuple[str, str], line: int, reason: str
) -> None:
    text = GOOD.replace(*change)
    with pytest.raises(sc.ScenarioError) as refused:
        sc.parse(text, "exam.toml")
    message = str(refused.value)
    assert reason in message
    assert f"line {line}" in message or f"exam.toml:{line}:" in message


def test_flags_are_checked_like_the_file() -> None:
    base = sc.parse(GOOD, "exam.toml")
    changed = sc.override(base, ["candidates=80", "protocol=msgpack", "faults.recording_drop=3"])
    assert (changed.candidates, changed.protocol, changed.faults.recording_drop) == (80, "msgpack", 3)
    with pytest.raises(sc.ScenarioError, match=r"--set: arrival.ramp_s: the ramp \(99 s\) is longer"):
        sc.override(base, ["arrival.ramp_s=99"])


@given(st.integers(1, 300), st.integers(0, 30), st.floats(0, 0.5), st.integers(0, 10), st.integers(0, 2**16))
def test_schedules_fit_the_exam(candidates: int, camera: int, churn: float, drops: int, seed: int) -> None:
    s = model.Scenario(
        candidates=candidates,
        exam_s=120,
        seed=seed,
        churn=model.Churn(share=churn),
        faults=model.Faults(camera_loss=min(camera, candidates), recording_drop=min(drops, candidates)),
    )
    plans, proctors = build(s)
    assert len(plans) == candidates and len({p.user_id for p in plans}) == candidates
    for p in plans:
        assert 0 <= p.arrive_s < p.finish_s
        for at, length in (*p.churn, *p.camera):
            assert p.arrive_s < at and at + length < p.finish_s
    assert sum(p.recording_fault is not None for p in plans) == min(drops, candidates)
    assert sum(len(h) for h in deal(plans, 3)) == candidates
    assert build(s) == (plans, proctors)  # seeded: the same run every time


def test_a_later_sitting_is_the_same_plan_later_under_new_ids() -> None:
    demo = sc.load("demo")
    plans, _ = build(demo)
    later = shifted(plans, 320.0, "s2-")
    assert {p.user_id for p in later}.isdisjoint({p.user_id for p in plans})
    for before, after in zip(plans, later, strict=True):
        assert after.user_id == f"s2-{before.user_id}" and after.recording_fault == before.recording_fault
        assert (after.arrive_s, after.finish_s) == pytest.approx(
            (before.arrive_s + 320, before.finish_s + 320)
        )
        for (at, length), (at2, length2) in zip(
            (*before.churn, *before.camera), (*after.churn, *after.camera), strict=True
        ):
            assert (at2, length2) == pytest.approx((at + 320, length))
    assert sum(bool(p.camera) for p in plans) == 1 and sum(p.recording_fault is not None for p in plans) == 1


def test_coverage_counts_unwatched_past_the_grace_and_tells_shortage_apart() -> None:
    cov = Coverage(grace_s=2)  # counted after grace + SLACK_S (2 s): from t = 5 on
    for t in range(10):  # room b unwatched although 2 proctors for 2 rooms: the hub's fault
        cov.feed(float(t), {"a": 5, "b": 3}, {"a"}, proctors=2)
    assert cov.unwatched_s == pytest.approx(3 * 5) and cov.shortage_s == 0
    short = Coverage(grace_s=2)
    for t in range(10):  # 1 proctor for 2 rooms: the scenario's shortage
        short.feed(float(t), {"a": 5, "b": 3}, {"a"}, proctors=1)
    assert short.shortage_s == pytest.approx(3 * 5) and short.unwatched_s == 0
    assert short.figures()["worst_shortage_rooms"] == 2


def test_alerts_are_matched_to_faults_and_false_ones_counted() -> None:
    injected = [
        {"kind": "camera", "candidate_id": "c1", "at": 100.0, "until": 120.0},
        {"kind": "camera", "candidate_id": "c2", "at": 100.0, "until": 102.0},  # too short to alert
        {"kind": "recording.drop", "candidate_id": "c3", "at": 150.0, "until": 150.0},
    ]
    alerts = first_sightings(
        [
            (
                111.0,
                {
                    "alert_id": "a1",
                    "kind": "video.gap",
                    "state": "open",
                    "candidate_id": "c1",
                    "started_at": 100_500,
                },
            ),
            (125.0, {"alert_id": "a1", "kind": "video.gap", "state": "closed", "candidate_id": "c1"}),
            (180.0, {"alert_id": "a2", "kind": "recording.missing", "state": "open", "candidate_id": "c3"}),
            (130.0, {"alert_id": "a3", "kind": "video.gap", "state": "open", "candidate_id": "c9"}),
            (90.0, {"alert_id": "s", "kind": "proctor.shortage", "state": "open", "candidate_id": None}),
        ]
    )
    found = account(
        injected, alerts, alert_after_s=10, armed={"recording.drop": 1}, touched_by_webhook_faults=set()
    )
    assert found["by_kind"]["camera"]["expected"] == 1 and found["by_kind"]["camera"]["detected"] == 1
    assert found["by_kind"]["camera"]["delays_s"] == [11.0]
    assert found["by_kind"]["recording.drop"]["delays_s"] == [30.0]
    assert found["recall"] == 1.0
    assert [a["alert_id"] for a in found["false_alerts"]] == ["a3"]
    assert [a["alert_id"] for a in found["event_alerts"]] == ["s"]


def test_reconnect_policy_follows_the_close_codes() -> None:
    rng = random.Random(1)
    for code in (1000, 1008, 1009, 4400, 4403):
        assert reconnect_delay(code, 0, rng) is None
    assert all(0 <= reconnect_delay(1012, 9, rng) <= 1.0 for _ in range(50))  # type: ignore[operator]
    delays = [reconnect_delay(1013, attempt, rng) for attempt in range(12) for _ in range(20)]
    assert all(d is not None and 0 <= d <= 15.0 for d in delays)
    assert max(d for d in delays if d is not None) > 5  # backoff grows towards the cap


CLUSTER = (
    GOOD
    + """
[hub]
store = "redis"
nodes = 2
simulator = "standalone"
"""
)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (GOOD + "[hub]\nnodes = 2\n", 'hub.nodes: 2 nodes share their state in Redis: set store = "redis"'),
        (GOOD + "[hub]\nnodes = 0\n", "hub.nodes: must be between 1 and 16, got 0"),
        (GOOD + "[hub]\nnodes = 1.5\n", "hub.nodes: must be an integer"),
        (GOOD + '[hub]\nstore = "mongo"\n', "hub.store: must be one of memory, redis, got 'mongo'"),
        (GOOD + '[hub]\nstore = "redis"\n', "hub.simulator: nodes on Redis share one 100ms simulator"),
        (GOOD.replace("camera_loss = 2", "node_kill_at_s = 30"), "faults.node_kill_at_s: a node kill needs"),
        (CLUSTER + "[goals]\nseats_lost = -1\n", "goals.seats_lost: must not be negative"),
        (CLUSTER + '[goals]\nkill_recovery_s = "soon"\n', "goals.kill_recovery_s: must be a number"),
    ],
)
def test_cluster_fields_are_refused_with_their_name(text: str, reason: str) -> None:
    with pytest.raises(sc.ScenarioError) as refused:
        sc.parse(text, "cluster.toml")
    assert reason in str(refused.value)


def test_a_node_kill_must_fall_in_the_exam_and_defaults_its_goal_to_the_grace() -> None:
    with pytest.raises(
        sc.ScenarioError, match=r"cluster.toml:\d+: faults.node_kill_at_s: after the exam ends"
    ):
        sc.parse(CLUSTER.replace("camera_loss = 2", "node_kill_at_s = 60"), "cluster.toml")
    scenario = sc.parse(CLUSTER.replace("camera_loss = 2", "node_kill_at_s = 30"), "cluster.toml")
    assert (scenario.hub.nodes, scenario.hub.store, scenario.faults.node_kill_at_s) == (2, "redis", 30.0)
    assert scenario.kill_recovery_goal_s == scenario.hub.grace_s + 1
    for name in ("node-kill", "exam-5000-cluster"):
        shipped = sc.load(name)
        assert (shipped.hub.nodes, shipped.hub.store) == (2, "redis")
    assert sc.load("node-kill").faults.node_kill_at_s == sc.load("node-kill").exam_s / 2


def test_a_node_kill_is_judged_on_the_dead_nodes_candidates_and_the_others_sockets() -> None:
    from load_tests.judge.node_kill import figures

    t0, kill = 1000.0, 1030.0
    links = [  # user, role, node, hello at, closed at, code, closed by the user
        ("back", "candidate", 1, 1001.0, 1030.1, 1006, False),
        ("back", "candidate", 0, 1030.5, 1060.0, 1000, True),
        ("moved", "candidate", 1, 1001.0, 1030.1, 1006, False),
        ("gone", "candidate", 1, 1001.0, 1030.1, 1006, False),
        ("finished", "candidate", 1, 1001.0, 1030.1, 1006, False),
        ("finished", "candidate", 0, 1030.4, 1031.0, 1000, True),
        ("bystander", "candidate", 0, 1001.0, 1040.0, 1011, False),
        ("calm", "proctor", 0, 1001.0, 1060.0, 1000, True),
        ("before", "candidate", 1, 1001.0, 1020.0, 1006, True),
    ]
    assigns = [
        ("back", 1001.1, "r1"),
        ("back", 1030.6, "r1"),
        ("moved", 1001.1, "r1"),
        ("moved", 1031.0, "r2"),
        ("gone", 1001.1, "r2"),
        ("finished", 1001.1, "r2"),
    ]
    timeline = [{"t_s": 30.0, "unwatched": 3}, {"t_s": 31.0, "unwatched": 1}, {"t_s": 32.0, "unwatched": 0}]
    got = figures([{"links": links, "assigns": assigns}], timeline, t0=t0, node=1, killed_at=kill)
    assert got["dead_node_candidates"] == 4  # "before" had left before the kill
    assert (got["seats_never_back"], got["seats_moved"], got["seats_lost"]) == (["gone"], ["moved"], 2)
    assert got["left_before_back"] == 1 and got["reseated_max_s"] == 0.6
    assert got["kill_recovery_s"] is None  # "gone" never came back
    assert (got["bystanders_dropped"], got["bystanders"]) == (1, ["bystander"])
    healed = figures([{"links": links[:2], "assigns": assigns[:2]}], timeline, t0=t0, node=1, killed_at=kill)
    assert healed["seats_lost"] == 0 and healed["kill_recovery_s"] == 2.0  # seated at 0.6 s, watched at 2 s
    assert healed["slowest_reseats"] == [
        {"user": "back", "noticed_s": 0.1, "hello_s": 0.5, "node": 0, "seated_s": 0.6}
    ]


def test_a_candidate_whose_network_goes_while_it_reconnects_is_excused_for_the_time_it_was_away() -> None:
    from load_tests.judge.node_kill import figures

    t0, kill = 1000.0, 1030.0
    links = [
        ("back", "candidate", 1, 1001.0, 1030.1, 1006, False),
        ("back", "candidate", 0, 1030.5, 1060.0, 1000, True),
        ("churned", "candidate", 1, 1001.0, 1030.1, 1006, False),  # no socket open when its network went
        ("churned", "candidate", 0, 1049.0, 1060.0, 1000, True),
    ]
    assigns = [("back", 1001.1, "r1"), ("back", 1030.6, "r1"), ("churned", 1001.1, "r2")]
    assigns.append(("churned", 1049.1, "r2"))
    timeline = [{"t_s": float(t), "unwatched": 0} for t in range(30, 60)]
    part = {"links": links, "assigns": assigns}
    blind = figures([part], timeline, t0=t0, node=1, killed_at=kill)
    assert blind["reseated_max_s"] == 19.1 and blind["kill_recovery_s"] == 20.0  # away counted as slow
    seen = figures([{**part, "leaves": [("churned", 1030.3)]}], timeline, t0=t0, node=1, killed_at=kill)
    assert (seen["left_before_back"], seen["left_before_back_users"], seen["seats_lost"]) == (
        1,
        ["churned"],
        0,
    )
    assert seen["reseated_max_s"] == 0.6 and seen["kill_recovery_s"] == 1.0  # watched at the next sample
    late = figures([{**part, "leaves": [("churned", 1035.0)]}], timeline, t0=t0, node=1, killed_at=kill)
    assert late["left_before_back_max_s"] == 5.0 and late["kill_recovery_s"] == 5.0  # it waited 5 s unseated


def test_a_reconnect_the_hub_never_saw_as_a_drop_is_no_presence_change_to_push() -> None:
    from load_tests.judge.verdict import push_latencies

    actions = [
        (1.0, "c1", "presence", "online"),
        (5.0, "c1", "presence", "online"),  # back on the other node after a node kill: nothing changed
        (8.0, "c1", "presence", "reconnecting"),
        (9.0, "c1", "presence", "online"),
        (2.0, "c1", "video", "on"),
    ]
    deliveries = [
        (1.1, "c1", "online", "unknown", 0),
        (2.1, "c1", "online", "on", 0),
        (8.2, "c1", "reconnecting", "on", 0),
        (9.3, "c1", "online", "on", 0),
    ]
    found, missing = push_latencies(actions, deliveries)
    assert missing == 0
    assert [(t, round(x, 2), change) for t, x, change in found] == [
        (1.0, 0.1, "presence=online"),
        (2.0, 0.1, "video=on"),
        (8.0, 0.2, "presence=reconnecting"),
        (9.0, 0.3, "presence=online"),
    ]
