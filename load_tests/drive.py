"""The running part of a load test: watch the exam once a second, drain, collect, report.

Each second every worker's snapshot is merged (coverage.py counts unwatched candidate-seconds) and
shown (progress.py); the hub and the tester are sampled (observe.py). After the exam the run
drains: it ends as soon as every fault expected to alert has an alert (plus a few quiet seconds for
stragglers), or at `drain_s`. Then the users stop, their records come back, and the report is
written (assemble.py, html_report.py).
"""

from __future__ import annotations

import asyncio
import json
import pstats
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from load_tests import assemble, html_report
from load_tests.coverage import Coverage
from load_tests.detection import EXPECTED
from load_tests.observe import Sampler
from load_tests.scenario import Scenario
from load_tests.target import http_client

if TYPE_CHECKING:
    from load_tests.runner import Session

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


async def drive(session: Session, observer: Sampler, ctx: dict[str, Any]) -> int:
    s, pool, t0 = session.scenario, session.pool, ctx["t0"]
    if pool is None or session.target is None or session.armory is None:
        raise RuntimeError("Expected a started session, but got none")
    live, cov = Live(), Coverage(grace_s=s.hub.grace_s)
    sampling = asyncio.get_running_loop().create_task(observer.run())
    plans = ctx["plans"]
    end_exam, hard_end = t0 + s.exam_s + 1.0, t0 + s.exam_s + 1.0 + s.drain_s
    fired: list[dict[str, Any]] = []
    next_log, quiet_from = 0.0, None
    try:
        while (now := time.time()) < hard_end:
            snaps = await pool.each("snapshot", [{}] * len(pool), timeout=30)
            point = merge(snaps, t0, live, cov)
            phase = "arriving" if now < t0 + s.arrival_span_s else "exam" if now < end_exam else "draining"
            session.progress.update(view(point, phase, s, _cores(observer)))
            if now >= end_exam:
                if now >= next_log:
                    fired = await asyncio.to_thread(session.armory.log)
                    next_log = now + LOG_POLL_S
                recordings_due = sum(1 for e in fired if e.get("kind", "").startswith("recording."))
                wanted = sum(1 for c in plans if c.recording_fault)
                if recordings_due >= wanted and all_alerted(expected_alerts(s, plans, fired), live.alerts):
                    quiet_from = quiet_from or now
                    if now - quiet_from >= QUIET_S and point["finished"] >= s.candidates:
                        break
            await asyncio.sleep(max(0.0, 1.0 - (time.time() - now)))
    finally:
        sampling.cancel()
    session.progress.note("exam over; collecting what the users recorded")
    await pool.each("stop", [{}] * len(pool), timeout=60)
    parts = await pool.each("collect", [{}] * len(pool), timeout=120)
    sim_log = await asyncio.to_thread(session.armory.log)
    hub_report = await asyncio.to_thread(_hub_report, session, ctx["event_id"])
    return finish(session, observer, ctx, parts, live, cov, sim_log, hub_report)


def _hub_report(session: Session, event_id: str) -> dict[str, Any] | None:
    target = session.target
    if target is None:
        return None
    try:
        with http_client(30.0) as http:
            answer = http.get(
                f"{target.hub_url}/api/v1/events/{event_id}/report", headers=target.admin_headers()
            )
    except httpx.HTTPError:
        return None
    return answer.json() if answer.status_code == 200 else None


def profile_top(path: Path, limit: int = 25) -> list[dict[str, Any]]:
    """The hub's busiest functions by own time, from a cProfile dump."""
    stats = pstats.Stats(str(path))
    rows = []
    for (filename, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{name} ({Path(filename).name}:{line})",
                "calls": calls,
                "own_s": round(own, 3),
                "cumulative_s": round(cumulative, 3),
            }
        )
    return sorted(rows, key=lambda r: -r["own_s"])[:limit]


def finish(
    session: Session,
    observer: Sampler,
    ctx: dict[str, Any],
    parts: list[dict[str, Any]],
    live: Live,
    cov: Coverage,
    sim_log: list[dict[str, Any]],
    hub_report: dict[str, Any] | None,
) -> int:
    s, target = session.scenario, session.target
    if target is None:
        raise RuntimeError("Expected a target, but got none")
    notes = (
        []
        if observer.has_process_metrics
        else ["the hub's /metrics has no process_* samples: RSS/CPU from /proc"]
    )
    unanswered = sum(1 for p in parts for f in p["media_failures"] if f["status"] < 400)
    if unanswered:
        notes.append(
            f"{unanswered} media-plane calls got no answer within 15 s: the simulator, not the hub, "
            "was the limit there (they are not counted as failed joins)"
        )
    if hub_report is None:
        notes.append(
            "the hub has no report endpoint (GET /api/v1/events/{e}/report): recordings per the tester only"
        )
    report = assemble.build(
        scenario=s,
        target={
            "hub_url": target.hub_url,
            "sim_url": target.sim_url,
            "local": target.local,
            "event_id": ctx["event_id"],
            "node": ctx["hello"].get("node"),
        },
        started=ctx["started"],
        t0=ctx["t0"],
        parts=parts,
        coverage=cov,
        timeline=live.timeline,
        samples=observer.series,
        rates=observer.rates(),
        sim_log=sim_log,
        armed=ctx["armed"],
        hub_report=hub_report,
        workers=ctx["workers"],
        interrupted=False,
        notes=notes,
    )
    session.clean_up()  # stop the hub now: its profile is written when it exits
    report["processes_stopped"] = session.stopped
    if target.profile is not None and target.profile.exists():
        if target.profile.suffix == ".prof":
            report["hub_profile"] = {"by_own": profile_top(target.profile)}
        else:
            report["hub_profile"] = json.loads(target.profile.read_text())
    path = session.run_dir / "report.json"
    path.write_text(json.dumps(report, indent=1, default=str))
    page = html_report.write(report, session.run_dir / "report.html")
    print(summary(report, path, page))
    return 0 if report["verdict"]["ok"] else 1


def summary(report: dict[str, Any], path: Path, page: Path) -> str:
    v, f = report["verdict"], report["figures"]
    lines = [f"{'PASS' if v['ok'] else 'FAIL'}: {report['scenario']['name']}: {v['summary']}"]
    for c in v["checks"]:
        lines.append(f"  {'ok  ' if c['ok'] else 'MISS'} {c['goal']}: {c['text']}")
    det = report["detection"]
    for kind, row in sorted(det["by_kind"].items()):
        lines.append(
            f"  fault {kind}: armed {row['armed']}, injected {row['injected']}, expected to alert "
            f"{row['expected']}, alerted {row['detected']}, delay p50 {row['delay_p50_s']} s"
        )
    lines.append(
        f"  false alerts {f['false_alerts']}, alerts seen {f['alerts_seen']}; recordings expected "
        f"{f['recordings_expected']}, flagged missing {f['recordings_flagged_missing']}"
    )
    lines.append(f"  tester: {report['resources']['tester_note']}")
    lines += [f"  note: {note}" for note in report["notes"]]
    lines.append(f"report: {path}\nhtml:   {page}")
    return "\n".join(lines)
