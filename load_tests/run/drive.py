"""The running part of a load test: watch the exam once a second, drain, collect.

Each second every worker's snapshot is merged (coverage.py counts unwatched candidate-seconds) and
shown (progress.py); the hub and the tester are sampled (observe.py). After the exam the run
drains: it ends as soon as every fault expected to alert has an alert (plus a few quiet seconds for
stragglers) and no page has a backfill upload left to make, or at `drain_s`. Then the users stop
and their records come back, and the hub's timeline of each candidate is read (backfill coverage);
the runner turns them into the report. Everything it needs is passed in, so it knows nothing of the
runner.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from load_tests.judge.coverage import Coverage
from load_tests.judge.detection import EXPECTED
from load_tests.run.faults import Armory
from load_tests.run.observe import Sampler
from load_tests.run.progress import Progress
from load_tests.run.target import Target, candidate_timelines, event_report
from load_tests.scenario.model import Scenario
from load_tests.users.worker_pool import WorkerPool

QUIET_S = 3.0  # after the last expected alert, how long to wait for stragglers (false alerts)
LOG_POLL_S = 3.0


@dataclass
class Live:
    """What the main loop has learnt so far (merged snapshots)."""

    timeline: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[tuple[float, dict[str, Any]]] = field(default_factory=list)


def merge(snaps: list[dict[str, Any]], t0: float, live: Live, cov: Coverage) -> dict[str, Any]:
    rooms: dict[str, int] = {}
    for snap in snaps:
        for room, n in snap["candidate_rooms"].items():
            rooms[room] = rooms.get(room, 0) + n
    watched = {r for snap in snaps for r in snap["rooms_watched"]}
    proctors = sum(s["proctors_connected"] for s in snaps)
    now = max(s["t"] for s in snaps)
    cov.feed(now, rooms, watched, proctors)
    for snap in snaps:
        live.alerts.extend(snap["new_alerts"])
    observer = next((s["observer"] for s in snaps if s.get("observer")), None) or {}
    point = {
        "t_s": round(now - t0, 1),
        "connected": sum(s["candidates_connected"] for s in snaps),
        "assigned": sum(s["candidates_assigned"] for s in snaps),
        "media": sum(s["media_joined"] for s in snaps),
        "finished": sum(s["candidates_finished"] for s in snaps),
        "proctors": proctors,
        "rooms": sum(1 for n in rooms.values() if n),
        "watched": sum(1 for r, n in rooms.items() if n and r in watched),
        "unwatched": sum(n for r, n in rooms.items() if r not in watched),
        "open_alerts": observer.get("open_alerts"),
        "alerts_seen": len({a.get("alert_id") for _, a in live.alerts}),
        "refreshes": sum(s["refreshes"] for s in snaps),
        "errors": sum(s["errors"] for s in snaps),
        "media_failures": sum(s["media_failures"] for s in snaps),
        "expired_client_s": sum(s["expired_client_s"] for s in snaps),
        "backfill_pending": sum(s.get("backfill_pending", 0) for s in snaps),
        "backfill_archived": sum(s.get("backfill_archived", 0) for s in snaps),
    }
    live.timeline.append(point)
    return point


def view(point: dict[str, Any], phase: str, s: Scenario, cores: str) -> dict[str, Any]:
    open_now = "-" if point["open_alerts"] is None else point["open_alerts"]
    return {
        "scenario": s.name,
        "phase": phase,
        "elapsed": f"{max(point['t_s'], 0):.0f} / {s.exam_s + s.drain_s:.0f} s",
        "connected": f"{point['connected']} / {s.candidates}",
        "assigned": point["assigned"],
        "media": point["media"],
        "finished": point["finished"],
        "proctors": f"{point['proctors']} / {s.proctors}",
        "rooms": f"{point['rooms']} / {point['watched']}",
        "unwatched": point["unwatched"],
        "alerts": f"{point['alerts_seen']} ({open_now})",
        "refreshes": point["refreshes"],
        "errors": f"{point['errors']} / {point['media_failures']}",
        "backfill": f"{point['backfill_archived']} ({point['backfill_pending']})",
        "cpu": cores,
    }


def expected_alerts(s: Scenario, candidates: list[Any], fired: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Per fault kind, the candidates that should get an alert (gaps per the plan, recordings as fired)."""
    out: dict[str, set[str]] = {}
    for c in candidates:
        for kind, spans in (("camera", c.camera), ("churn", c.churn)):
            if any(length >= s.alert_after_s for _, length in spans):
                out.setdefault(kind, set()).add(c.user_id)
    for entry in fired:
        if entry.get("kind") in ("recording.drop", "recording.fail") and entry.get("user_id"):
            out.setdefault(entry["kind"], set()).add(entry["user_id"])
    return out


def all_alerted(expected: dict[str, set[str]], alerts: list[tuple[float, dict[str, Any]]]) -> bool:
    seen = {(a.get("candidate_id"), a.get("kind")) for _, a in alerts}
    return all(
        any((cid, k) in seen for k in EXPECTED[kind]) for kind, cids in expected.items() for cid in cids
    )


def _cores(observer: Sampler) -> str:
    rates = observer.rates()[-1:] or [{}]
    last = rates[0]
    hub = last.get("hub_cores")
    return f"{last.get('tester_cores', 0):.2f} / {'-' if hub is None else f'{hub:.2f}'}"


async def _kill(target: Target, at: float, ctx: dict[str, Any], progress: Progress) -> None:
    """At `at`, SIGKILL the last node (the simulator's webhooks go to the first); ctx["kill"] says when."""
    await asyncio.sleep(max(0.0, at - time.time()))
    node = len(target.urls) - 1
    ctx["kill"] = {"node": node, "at": await asyncio.to_thread(target.kill_node, node)}
    progress.note(f"SIGKILL to hub node {node + 1} of {len(target.urls)}")


@dataclass
class Collected:
    """What a run brought back: the workers' records, what was watched live, the simulator's log."""

    parts: list[dict[str, Any]]
    live: Live
    coverage: Coverage
    sim_log: list[dict[str, Any]]
    hub_report: dict[str, Any] | None
    timelines: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The hub's timeline of each candidate, read after the drain (backfill coverage)."""


async def drive(
    s: Scenario,
    pool: WorkerPool,
    armory: Armory,
    target: Target,
    progress: Progress,
    observer: Sampler,
    ctx: dict[str, Any],
) -> Collected:
    t0 = ctx["t0"]
    live, cov = Live(), Coverage(grace_s=s.hub.grace_s)
    sampling = asyncio.get_running_loop().create_task(observer.run())
    plans = ctx["plans"]
    end_exam, hard_end = t0 + s.exam_s + 1.0, t0 + s.exam_s + 1.0 + s.drain_s
    fired: list[dict[str, Any]] = []
    next_log, quiet_from = 0.0, None
    killing = None
    if s.faults.node_kill_at_s:
        at = t0 + s.faults.node_kill_at_s
        killing = asyncio.get_running_loop().create_task(_kill(target, at, ctx, progress))
    try:
        while (now := time.time()) < hard_end:
            snaps = await pool.each("snapshot", [{}] * len(pool), timeout=30)
            point = merge(snaps, t0, live, cov)
            phase = "arriving" if now < t0 + s.arrival_span_s else "exam" if now < end_exam else "draining"
            progress.update(view(point, phase, s, _cores(observer)))
            if now >= end_exam:
                if now >= next_log:
                    fired = await asyncio.to_thread(armory.log)
                    next_log = now + LOG_POLL_S
                recordings_due = sum(1 for e in fired if e.get("kind", "").startswith("recording."))
                wanted = sum(1 for c in plans if c.recording_fault)
                if recordings_due >= wanted and all_alerted(expected_alerts(s, plans, fired), live.alerts):
                    quiet_from = quiet_from or now
                    settled = point["finished"] >= s.candidates and point["backfill_pending"] == 0
                    if now - quiet_from >= QUIET_S and settled:
                        break
            await asyncio.sleep(max(0.0, 1.0 - (time.time() - now)))
    finally:
        sampling.cancel()
        if killing is not None:
            killing.cancel()
    progress.note("exam over; collecting what the users recorded")
    await pool.each("stop", [{}] * len(pool), timeout=60)
    parts = await pool.each("collect", [{}] * len(pool), timeout=120)
    sim_log = await asyncio.to_thread(armory.log)
    hub_report = await asyncio.to_thread(event_report, target, ctx["event_id"])
    ids = [c.user_id for c in plans]
    timelines = await asyncio.to_thread(candidate_timelines, target, ctx["event_id"], ids)
    return Collected(parts, live, cov, sim_log, hub_report, timelines)
