"""The witnesses' pure core: 100ms's word against the page's, proctors' views, folding old toggles."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from server.recording.monitor import intervals as iv
from server.recording.monitor import witnesses as wit
from server.recording.monitor.compaction import Budget, compact
from server.recording.monitor.timeline import VIDEO_DISPUTED, VIDEO_GAP, Rules, Signal, evaluate
from tests.signal_stories import closed, join, leave, media, offline, online

RULES = Rules(threshold_s=10, deadline_s=30)
times = st.integers(0, 60).map(float)
probes = [x / 2 for x in range(0, 140)]


# ---------------------------------------------------------------- 100ms


@st.composite
def peer_facts(draw: st.DrawFn) -> list[wit.PeerFact]:
    facts = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["join", "leave", "closed"]))
        peer = draw(st.sampled_from(["a", "b", "c"]))
        session = draw(st.sampled_from(["s1", "s2"]))
        # A peer id belongs to one session (100ms makes a new one at every join).
        facts.append(
            wit.PeerFact(draw(times), kind, "" if kind == "closed" else f"{session}-{peer}", session)
        )
    return facts


def _out_at(facts: list[wit.PeerFact], at: float) -> bool:
    """The rule said plainly: 100ms has said a leave or close by `at`, and no peer it saw join is in."""
    past = [f for f in facts if f.at <= at]
    closes = {f.session_id for f in past if f.kind == "closed"}
    leaves = {f.peer_id for f in past if f.kind == "leave"}
    inside = [f for f in past if f.kind == "join" and f.peer_id not in leaves and f.session_id not in closes]
    return any(f.kind in ("leave", "closed") for f in past) and not inside


@given(peer_facts())
def test_out_of_the_room_is_what_100ms_said_last_at_every_instant(facts: list[wit.PeerFact]) -> None:
    out = wit.hms_out(facts)
    for at in probes:
        assert iv.contains(out, at) == _out_at(facts, at), at


def test_a_leave_ends_the_room_until_a_new_join_of_the_user() -> None:
    facts = [
        wit.PeerFact(1, "join", "a", "s1"),
        wit.PeerFact(5, "join", "b", "s1"),
        wit.PeerFact(6, "leave", "a", "s1"),  # b is still in
        wit.PeerFact(9, "leave", "b", "s1"),
        wit.PeerFact(20, "join", "c", "s1"),
        wit.PeerFact(30, "closed", "", "s1"),
    ]
    assert wit.hms_out(facts) == ((9, 20), (30, None))
    assert wit.hms_out([wit.PeerFact(1, "join", "a", "s1")]) == ()


# ---------------------------------------------------------------- proctors

streams = st.lists(
    st.tuples(times, st.sampled_from([wit.SEEN_NONE, wit.SEEN_OFF, wit.SEEN_ON])), max_size=5
).map(sorted)
spans = st.lists(st.tuples(times, st.one_of(st.none(), times)), max_size=4).map(iv.normalize)


def _state_at(toggles: list[wit.Toggle], at: float) -> int:
    state = wit.SEEN_NONE
    for when, value in toggles:
        if when <= at:
            state = value
    return state


@given(spans, st.dictionaries(st.sampled_from(["p1", "p2", "p3"]), streams, max_size=3))
def test_a_dispute_is_a_claim_of_video_only_observers_who_see_none_contradict(
    claimed: iv.Intervals, observers: dict[str, list[wit.Toggle]]
) -> None:
    disputed = wit.disputed(claimed, observers)
    for at in probes:
        views = [_state_at(t, at) for t in observers.values()]
        expected = iv.contains(claimed, at) and wit.SEEN_OFF in views and wit.SEEN_ON not in views
        assert iv.contains(disputed, at) == expected, at
        opinions = wit.observers_at(observers, at)
        assert sorted(opinions.values()) == sorted(v == wit.SEEN_ON for v in views if v != wit.SEEN_NONE)


# ---------------------------------------------------------------- folding

claims = st.lists(st.tuples(times, st.sampled_from([0, 1, 2])), min_size=1, max_size=30).map(sorted)


def _runs(toggles: list[wit.Toggle]) -> list[tuple[float, float | None, int]]:
    changes = [t for i, t in enumerate(toggles) if i == 0 or toggles[i - 1][1] != t[1]]
    ends: list[float | None] = [t[0] for t in changes[1:]]
    return [(at, end, state) for (at, state), end in zip(changes, [*ends, None], strict=True)]


@given(claims, st.sampled_from([0.5, 3.0, 10.0]))
def test_folding_keeps_every_long_run_and_at_most_one_toggle_per_run_length(
    toggles: list[wit.Toggle], min_run: float
) -> None:
    folded = wit.fold(toggles, min_run_s=min_run)
    assert wit.fold(folded, min_run_s=min_run) == folded
    assert folded[-1][1] == toggles[-1][1]
    span = toggles[-1][0] - toggles[0][0]
    assert len(folded) <= span / min_run + 2
    for start, end, state in _runs(toggles):
        if end is None or end - start >= min_run:
            inside = [start, *(x / 4 + start for x in range(1, 8))]
            for at in (a for a in inside if end is None or a < end):
                assert _state_of(folded, at) == state, (start, end, at)


def _state_of(toggles: tuple[wit.Toggle, ...], at: float) -> int | None:
    state = None
    for when, value in toggles:
        if when <= at:
            state = value
    return state


@given(claims)
def test_folding_runs_that_are_all_long_enough_changes_nothing(toggles: list[wit.Toggle]) -> None:
    spaced = [(i * 20.0, s) for i, (_, s) in enumerate(toggles)]
    changes = [t for i, t in enumerate(spaced) if i == 0 or spaced[i - 1][1] != t[1]]
    assert wit.fold(spaced, min_run_s=10) == tuple(changes)


# ---------------------------------------------------------------- stories on the timeline


def observed(by: str, at: float, video: bool) -> Signal:
    return Signal(f"o:{by}:{at}", at, "observed", observer=by, video=video)


def unobserved(by: str, at: float) -> Signal:
    return Signal(f"o:{by}:{at}", at, "unobserved", observer=by)


def test_a_page_claiming_video_after_100ms_saw_its_peer_leave_has_a_gap_until_it_joins_again() -> None:
    signals = [online(0), media(1), join("p1", 1), leave("p1", 20)]
    t = evaluate(signals, 29, RULES)
    assert t.gaps == () and t.next_check == 30 and t.video_state == "off"
    (gap,) = evaluate(signals, 30, RULES).gaps
    assert (gap.kind, gap.cause, gap.start, gap.end) == (VIDEO_GAP, "peer_left_100ms", 20, None)
    (gap,) = evaluate([*signals, join("p2", 40)], 50, RULES).gaps
    assert (gap.start, gap.end) == (20, 40)


def test_a_closed_session_ends_the_room_for_every_peer() -> None:
    signals = [online(0), media(1), join("p1", 1), join("p2", 2), closed(20)]
    (gap,) = evaluate(signals, 45, RULES).gaps  # (the recordings are not due yet)
    assert (gap.cause, gap.start) == ("peer_left_100ms", 20)
    assert evaluate(signals, 45, RULES).in_room == ((1, 20),)


def test_without_a_word_from_100ms_the_page_is_believed() -> None:
    assert evaluate([online(0), media(1)], 100, RULES).gaps == ()


def test_a_claim_every_watching_proctor_contradicts_is_disputed_with_both_reports() -> None:
    base = [online(0), media(1), join("p1", 1), observed("pr1", 2, True)]
    assert evaluate([*base, observed("pr2", 3, False)], 100, RULES).gaps == ()  # pr1 still sees it
    signals = [*base, observed("pr1", 20, False)]
    (dispute,) = evaluate(signals, 100, RULES).gaps
    assert (dispute.kind, dispute.start, dispute.end) == (VIDEO_DISPUTED, 20, None)
    assert dispute.observed == (("pr1", False),)
    (dispute,) = evaluate([*signals, unobserved("pr1", 35)], 100, RULES).gaps
    assert dispute.end == 35
    short = evaluate([*signals, observed("pr1", 25, True)], 100, RULES)
    assert short.gaps == ()
    assert evaluate(signals, 25, RULES).next_check == 30


# ---------------------------------------------------------------- compaction


@st.composite
def flapping(draw: st.DrawFn) -> list[Signal]:
    """A sitting with many toggles, each state held for at least the threshold."""
    out = [online(0), join("p1", 0)]
    at = 1.0
    for _ in range(draw(st.integers(0, 60))):
        at += draw(st.sampled_from([10.0, 11.5, 25.0]))
        what = draw(st.sampled_from(["media", "presence", "observer"]))
        if what == "media":
            out.append(media(at, joined=draw(st.booleans()), video=draw(st.booleans())))
        elif what == "presence":
            out.append(online(at) if draw(st.booleans()) else offline(at))
        else:
            by = draw(st.sampled_from(["pr1", "pr2"]))
            out.append(observed(by, at, draw(st.booleans())) if draw(st.booleans()) else unobserved(by, at))
    return out


def _essence(signals: list[Signal], now: float) -> tuple[object, ...]:
    t = evaluate(signals, now, RULES)
    return (
        t.gaps,
        t.present,
        t.sitting,
        t.video,
        t.in_room,
        t.disputed,
        t.video_state,
        t.room_id,
        t.next_check,
    )


@given(flapping(), st.integers(1, 8))
def test_compaction_keeps_the_timeline_and_bounds_the_raw_toggles(signals: list[Signal], keep: int) -> None:
    budget = Budget(budget=keep * 2, keep=keep, min_run_s=RULES.threshold_s)
    now = max(s.at for s in signals) + 5
    held = list(signals)
    for _ in range(3):
        change = compact(held, budget)
        if change is None:
            break
        held = [s for s in held if s not in change.remove] + list(change.add)
        held = [Signal.from_dict(s.to_dict()) for s in held]
    raw = [s for s in held if s.kind in ("media", "observed", "unobserved", "online", "offline")]
    assert len(raw) <= budget.budget
    assert len([s for s in held if s.kind == "fold"]) <= 4  # one per stream
    assert _essence(held, now) == _essence(signals, now)


def test_a_flapping_camera_over_eight_hours_folds_into_a_small_timeline() -> None:
    signals = [online(0), join("p1", 0)]
    signals += [media(1 + i * 2.0, video=i % 2 == 0) for i in range(14_400)]  # 8 h, every 2 s
    held: list[Signal] = []
    for start in range(0, len(signals), 500):  # as the monitor would, after each batch of writes
        held += signals[start : start + 500]
        change = compact(held, Budget())
        if change is not None:
            gone = set(change.remove)
            held = [s for s in held if s not in gone] + list(change.add)
    assert len(held) <= Budget().budget + 2 + 1
    (fold,) = [s for s in held if s.kind == "fold" and not s.stream]  # the page's claims
    assert len(fold.toggles) <= 2
    assert [g for g in evaluate(held, 28_805, RULES).gaps if g.kind == VIDEO_GAP] == []


def test_folds_of_one_stream_combine() -> None:
    fold_a = Signal("fold::1000", 1, "fold", toggles=((0.0, 2), (1.0, 0)))
    fold_b = Signal("fold::50000", 50, "fold", toggles=((40.0, 2), (50.0, 2)))
    t = evaluate([online(0), fold_a, fold_b], 60, RULES)
    assert t.video == ((0, 1), (40, None))
    assert list(itertools.chain(fold_a.toggles)) == [(0.0, 2), (1.0, 0)]
