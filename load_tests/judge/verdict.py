"""From what the workers recorded to figures, and from figures and goals to the verdict (pure).

`latency_figures` summarises join latency (auth -> room.assign, overall and per time bucket) and
push latency (a candidate's change -> the candidate.status at the proctors holding its room);
`token_figures` the 100ms tokens the users held; `judge` compares every figure with its goal and
names each miss, so a CI job can gate on the exit code and a reader sees why.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from load_tests.judge.stats import percentile
from load_tests.scenario.model import Scenario

PUSH_WINDOW_S = 30.0  # a delivery later than this is not the answer to that change


def _ms(values: Sequence[float], p: float) -> float | None:
    return round(percentile(values, p) * 1000, 1) if values else None


def join_series(
    joins: Sequence[tuple[float, float, bool]], t0: float, bucket_s: float
) -> list[dict[str, Any]]:
    buckets: dict[int, list[float]] = defaultdict(list)
    for sent, latency, _ in joins:
        buckets[math.floor((sent - t0) / bucket_s)].append(latency)
    return [
        {"t_s": k * bucket_s, "n": len(v), "p50_ms": _ms(v, 50), "p99_ms": _ms(v, 99)}
        for k, v in sorted(buckets.items())
    ]


def changes(actions: Sequence[tuple[float, str, str, str]]) -> list[tuple[float, str, str, str]]:
    """The actions that change what proctors were told: a candidate back `online` after a socket the
    hub never saw go (its node was killed, and the user came back before the node was reaped) is no
    presence change, so no `candidate.status` answers it."""
    last: dict[str, str] = {}
    out = []
    for action in sorted(actions):
        _, cid, field, value = action
        if field == "presence":
            if last.get(cid) == value:
                continue
            last[cid] = value
        out.append(action)
    return out


def push_latencies(
    actions: Sequence[tuple[float, str, str, str]], deliveries: Sequence[tuple[float, str, str, str, int]]
) -> tuple[list[tuple[float, float, str]], int]:
    """(action time, seconds to the first matching delivery, what changed) per action; how many had none."""
    by_candidate: dict[str, list[tuple[float, str, str]]] = defaultdict(list)
    for recv, cid, presence, video, _ in deliveries:
        by_candidate[cid].append((recv, presence, video))
    for seen in by_candidate.values():
        seen.sort()
    found: list[tuple[float, float, str]] = []
    missing = 0
    for t, cid, field, value in changes(actions):
        seen = by_candidate.get(cid, [])
        start = bisect.bisect_left(seen, (t, "", ""))
        hit = next(
            (
                recv
                for recv, presence, video in seen[start:]
                if recv - t <= PUSH_WINDOW_S and (presence if field == "presence" else video) == value
            ),
            None,
        )
        if hit is None:
            missing += 1
        else:
            found.append((t, hit - t, f"{field}={value}"))
    return found, missing


def latency_figures(parts: Sequence[dict[str, Any]], t0: float, exam_s: float) -> dict[str, Any]:
    joins = [j for p in parts for j in p["joins"]]
    latencies = [j[1] for j in joins]
    first = [j[1] for j in joins if j[2]]
    actions = [a for p in parts for a in p["actions"]]
    deliveries = [d for p in parts for d in p["deliveries"]]
    pushes, push_missing = push_latencies(actions, deliveries)
    push = [x for _, x, _ in pushes]
    by_change: dict[str, list[float]] = defaultdict(list)
    for _, x, change in pushes:
        by_change[change].append(x)
    return {
        "joins": len(joins),
        "join_p50_ms": _ms(latencies, 50),
        "join_p99_ms": _ms(latencies, 99),
        "join_max_ms": round(max(latencies) * 1000, 1) if latencies else None,
        "first_join_p99_ms": _ms(first, 99),
        "join_series": join_series(joins, t0, max(1.0, exam_s / 60)),
        "push_n": len(push),
        "push_p50_ms": _ms(push, 50),
        "push_p99_ms": _ms(push, 99),
        "push_unanswered": push_missing,
        "push_by_change": {
            k: {"n": len(v), "p50_ms": _ms(v, 50), "p99_ms": _ms(v, 99)} for k, v in by_change.items()
        },
        "push_points": [(round(t - t0, 2), round(x * 1000, 1), change) for t, x, change in pushes],
    }


def token_figures(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    tokens = [p["tokens"] for p in parts]
    margins = [m for t in tokens for m in t["margins"]]
    lefts = [t["min_left_s"] for t in tokens if t.get("min_left_s") is not None]
    return {
        "room_assigns": sum(t["assigns"] for t in tokens),
        "refreshes": sum(t["refreshes"] for t in tokens),
        "new_tokens": sum(t["new_tokens"] for t in tokens),
        "acks": sum(t["acks"] for t in tokens),
        "jwt_exp_mismatches": sum(t["exp_mismatch"] for t in tokens),
        "margin_min_s": round(min(margins), 2) if margins else None,
        "margin_p1_s": round(percentile(margins, 1), 2) if margins else None,
        "margin_p50_s": round(percentile(margins, 50), 2) if margins else None,
        "expired_token_s": sum(t["expired_client_s"] for t in tokens),
        "least_left_on_newest_s": round(min(lefts), 2) if lefts else None,
        "margins": [round(m, 2) for m in margins],
    }


def _check(
    name: str, value: float | None, goal: float, *, at_least: bool = False, why: str = ""
) -> dict[str, Any]:
    if value is None:
        ok = not at_least
        text = "not measured" + ("" if ok else f" (goal >= {goal:g})")
    else:
        ok = value >= goal if at_least else value <= goal
        text = f"{value:g} ({'>=' if at_least else '<='} {goal:g})"
    return {"goal": name, "ok": ok, "value": value, "target": goal, "text": text, "why": "" if ok else why}


GOALS = (  # (goal in Goals, figure, why it matters when missed)
    ("join_p99_ms", "join_p99_ms", "joins (auth -> room.assign) too slow"),
    ("push_p99_ms", "push_p99_ms", "status pushes to proctors too slow"),
    ("expired_token_s", "expired_token_s", "clients held an expired 100ms token"),
    (
        "failed_media_joins",
        "failed_media_joins",
        "100ms refused tokens the hub handed out (joins answered 4xx)",
    ),
    ("never_assigned", "never_assigned", "candidates never got a room"),
    (
        "unwatched_candidate_s",
        "unwatched_candidate_s",
        "rooms sat unwatched past the grace although proctors were enough",
    ),
    (
        "shortage_candidate_s",
        "shortage_candidate_s",
        "fewer proctors than occupied rooms (at worst {worst}): candidates sat unwatched",
    ),
    ("recall", "recall", "injected faults went undetected"),
    ("alert_delay_s", "alert_delay_max_s", "alerts came too late"),
    (
        "missing_delay_s",
        "missing_delay_max_s",
        "missing recordings flagged too late (RECORDING_DEADLINE_S counts from the session's close)",
    ),
    ("false_alerts", "false_alerts", "alerts for candidates with no injected fault"),
    (
        "unflagged_missing_recordings",
        "unflagged_missing_recordings",
        "dropped recordings were never flagged missing",
    ),
)


def judge(s: Scenario, f: dict[str, Any]) -> list[dict[str, Any]]:
    """Every goal of the scenario, with the figure, whether it was met, and the reason if not."""
    proctors, rooms = f.get("worst_shortage_proctors", 0), f.get("worst_shortage_rooms", 0)
    worst = f"{proctors} proctors for {rooms} occupied rooms"
    checks = [
        _check(
            goal, f.get(key), getattr(s.goals, goal), at_least=goal == "recall", why=why.format(worst=worst)
        )
        for goal, key, why in GOALS
    ]
    if s.goals.backfill_coverage > 0:
        checks.append(_backfill_check(s.goals.backfill_coverage, f.get("backfill_coverage")))
    if s.faults.node_kill_at_s:
        checks += _kill_checks(s, f)
    if f.get("interrupted"):
        checks.append(
            {
                "goal": "completed",
                "ok": False,
                "value": None,
                "target": None,
                "text": "interrupted",
                "why": "the run was interrupted before the end",
            }
        )
    return checks


def _backfill_check(goal: float, value: float | None) -> dict[str, Any]:
    """Coverage of lost recording by backfill: at least the goal; nothing lost meets it."""
    check = _check(
        "backfill_coverage",
        value,
        goal,
        at_least=True,
        why="recording time 100ms lost was not all uploaded back by the candidates' pages",
    )
    if value is None:
        check.update(ok=True, text=f"nothing lost (goal >= {goal:g})", why="")
    return check


KILL_GOALS = (
    ("seats_lost", "the dead node's candidates lost their seats (none back, or another room)"),
    ("kill_recovery_s", "after the node kill, candidates or rooms stayed unseated or unwatched too long"),
    ("bystanders_dropped", "users of the live nodes were dropped when another node died"),
)


def _kill_checks(s: Scenario, f: dict[str, Any]) -> list[dict[str, Any]]:
    """A node kill's goals; a figure that could not be measured (no kill, never recovered) fails."""
    out = []
    for goal, why in KILL_GOALS:
        target = s.kill_recovery_goal_s if goal == "kill_recovery_s" else getattr(s.goals, goal)
        check = _check(goal, f.get(goal), target, why=why)
        if f.get(goal) is None:
            what = (
                "never (not every candidate back, or a room never watched)"
                if f.get("node_killed")
                else "no kill"
            )
            check.update(ok=False, text=f"{what} (goal <= {target:g})", why=why)
        out.append(check)
    return out


def goals_table(s: Scenario) -> dict[str, Any]:
    return asdict(s.goals)
