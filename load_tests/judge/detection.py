"""Faults injected against alerts seen: recall, each alert's delay, false alerts, recordings (pure).

Injections come from the simulated users (camera loss, churn: when and for how long) and from the
simulator's injection log (recording drop / fail: which candidate's recording, and when it fired).
Alerts are what the observer (an admin of the event) and the proctors were sent, first sighting
per alert_id. An alert explains an injection when it is about the same candidate, of a kind the
fault should raise (`EXPECTED`), and (for gaps) started around the fault. A fault is expected to
alert when it fired and, for gaps, lasted at least `alert_after_s`. An alert for a candidate with
no injection of any kind is a false alert; one that matches none of its candidate's injections is
"unexplained" (listed, not counted as false).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from load_tests.judge.stats import percentile

EXPECTED: dict[str, frozenset[str]] = {
    "camera": frozenset({"video.gap"}),
    "churn": frozenset({"video.gap", "recording.gap"}),
    "recording.drop": frozenset({"recording.missing"}),
    "recording.fail": frozenset({"recording.failed"}),
}
TIMED = frozenset({"camera", "churn"})
EVENT_KINDS = frozenset({"proctor.shortage", "room.unwatched"})
SLACK_S = 10.0  # how far an alert's started_at may lie from the fault's window


def first_sightings(alerts: Iterable[tuple[float, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One entry per alert_id: its data (latest state seen), when it was first seen, when closed."""
    by_id: dict[str, dict[str, Any]] = {}
    for seen, data in sorted(alerts, key=lambda a: a[0]):
        alert_id = str(data.get("alert_id"))
        entry = by_id.setdefault(alert_id, {**data, "seen": seen, "closed_seen": None})
        if data.get("state") == "closed":
            entry["closed_seen"] = entry["closed_seen"] or seen
            entry["ended_at"] = data.get("ended_at")
    return list(by_id.values())


def _ms(value: object) -> float | None:
    return value / 1000 if isinstance(value, int | float) and not isinstance(value, bool) else None


def _matches(injection: dict[str, Any], alert: dict[str, Any]) -> bool:
    if alert.get("candidate_id") != injection["candidate_id"]:
        return False
    if alert.get("kind") not in EXPECTED[injection["kind"]]:
        return False
    if injection["kind"] not in TIMED:
        return True
    started = _ms(alert.get("started_at"))
    return started is None or injection["at"] - SLACK_S <= started <= injection["until"] + SLACK_S


def injections(users: Sequence[dict[str, Any]], sim_log: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every candidate fault: the users' own (camera, churn) and the simulator's recording faults."""
    out = [dict(i) for i in users if i["kind"] in TIMED]
    for entry in sim_log:
        if entry.get("kind") in ("recording.drop", "recording.fail") and entry.get("user_id"):
            out.append(
                {
                    "kind": entry["kind"],
                    "candidate_id": entry["user_id"],
                    "at": entry["at"],
                    "until": entry["at"],
                    "peer_id": entry.get("peer_id"),
                    "room_id": entry.get("room_id"),
                }
            )
    return sorted(out, key=lambda i: i["at"])


def account(
    injected: Sequence[dict[str, Any]],
    alerts: Sequence[dict[str, Any]],
    *,
    alert_after_s: float,
    armed: dict[str, int],
    touched_by_webhook_faults: set[str],
    fired_elsewhere: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Per fault kind: injected, expected to alert, detected, recall, delays; false and event alerts."""
    remaining = [a for a in alerts if a.get("kind") not in EVENT_KINDS]
    rows: dict[str, dict[str, Any]] = {}
    details = []
    for inj in injected:
        kind = inj["kind"]
        row = rows.setdefault(
            kind, {"armed": armed.get(kind), "injected": 0, "expected": 0, "detected": 0, "delays_s": []}
        )
        row["injected"] += 1
        expected = kind not in TIMED or inj["until"] - inj["at"] >= alert_after_s
        row["expected"] += expected
        hit = next((a for a in remaining if _matches(inj, a)), None)
        if hit is not None:
            remaining.remove(hit)
            delay = hit["seen"] - inj["at"]
            if expected:
                row["detected"] += 1
                row["delays_s"].append(round(delay, 3))
        details.append(
            {
                **inj,
                "expected": expected,
                "alert_id": hit and hit.get("alert_id"),
                "delay_s": None if hit is None else round(hit["seen"] - inj["at"], 3),
            }
        )
    for kind, count in armed.items():  # webhook and REST faults: not about one candidate, never expected
        row = rows.setdefault(
            kind, {"armed": count, "injected": 0, "expected": 0, "detected": 0, "delays_s": []}
        )
        if kind not in EXPECTED:
            row["injected"] = (fired_elsewhere or {}).get(kind, 0)
    for row in rows.values():
        delays = row["delays_s"]
        row["recall"] = round(row["detected"] / row["expected"], 4) if row["expected"] else None
        row["delay_p50_s"] = round(percentile(delays, 50), 2) if delays else None
        row["delay_max_s"] = max(delays) if delays else None
    faulty = {i["candidate_id"] for i in injected}
    false = [a for a in remaining if a.get("candidate_id") not in faulty | touched_by_webhook_faults]
    on_webhook = [a for a in remaining if a.get("candidate_id") in touched_by_webhook_faults - faulty]
    unexplained = [a for a in remaining if a.get("candidate_id") in faulty]
    expected_total = sum(r["expected"] for r in rows.values())
    detected_total = sum(r["detected"] for r in rows.values())
    # A missing recording can only be flagged a deadline after its session closed: judged apart.
    delays_all = [d for k, r in rows.items() if k != "recording.drop" for d in r["delays_s"]]
    missing = rows.get("recording.drop", {}).get("delays_s", [])
    return {
        "by_kind": rows,
        "expected": expected_total,
        "detected": detected_total,
        "recall": round(detected_total / expected_total, 4) if expected_total else None,
        "delay_max_s": max(delays_all) if delays_all else None,
        "delay_p50_s": round(percentile(delays_all, 50), 2) if delays_all else None,
        "missing_delay_max_s": max(missing) if missing else None,
        "false_alerts": [_brief(a) for a in false],
        "alerts_after_webhook_faults": [_brief(a) for a in on_webhook],
        "unexplained_alerts": [_brief(a) for a in unexplained],
        "event_alerts": [_brief(a) for a in alerts if a.get("kind") in EVENT_KINDS],
        "alerts_seen": len(alerts),
        "injections": details,
    }


def _brief(alert: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "alert_id",
        "kind",
        "state",
        "candidate_id",
        "room_id",
        "started_at",
        "ended_at",
        "detail",
        "seen",
    )
    return {k: alert.get(k) for k in keep}


def recordings(
    peers: Sequence[dict[str, Any]],
    detection: dict[str, Any],
    alerts: Sequence[dict[str, Any]],
    hub_report: dict[str, Any] | None,
) -> dict[str, Any]:
    """Recordings the candidates' peers should have produced, the faults on them, what the hub says."""
    expected = sum(1 for p in peers if p.get("video") and p.get("left_at"))
    rows = detection["by_kind"]
    dropped = rows.get("recording.drop", {}).get("injected", 0)
    failed = rows.get("recording.fail", {}).get("injected", 0)
    flagged_missing = sum(1 for a in alerts if a.get("kind") == "recording.missing")
    out: dict[str, Any] = {
        "expected": expected,
        "peers_still_joined": sum(1 for p in peers if not p.get("left_at")),
        "dropped": dropped,
        "failed": failed,
        "should_arrive": expected - dropped - failed,
        "flagged_missing": flagged_missing,
        "unflagged_missing": dropped - rows.get("recording.drop", {}).get("detected", 0),
    }
    if hub_report and isinstance(hub_report.get("candidates"), list):
        rows_hub = hub_report["candidates"]
        for key in ("recordings_expected", "recordings_arrived", "recordings_missing", "recordings_failed"):
            out[f"hub_{key}"] = sum(int(c.get(key) or 0) for c in rows_hub if isinstance(c, dict))
    return out
