"""What the review and the report show of timelines, as JSON and CSV. Pure."""

from __future__ import annotations

import csv
import io
from typing import Any

from server.recording.monitor.alerts import alert_id
from server.recording.monitor.intervals import Intervals, epoch_ms
from server.recording.monitor.timeline import Gap, Timeline
from server.store.records import FlagRecord, UserRecord

REPORT_COLUMNS = (
    "candidate_id",
    "name",
    "expected_minutes",
    "recorded_minutes",
    "coverage_pct",
    "gaps",
    "flags",
    "recordings_expected",
    "recordings_arrived",
    "recordings_missing",
    "recordings_failed",
    "backfilled_minutes",
    "recorded_pct",
    "backfilled_pct",
)
"""The last three came with extension E15: coverage_pct counts recorded and backfilled time, and the
two shares say how much of the sitting each covers (backfilled: only where no recording is)."""


def _spans(spans: Intervals) -> list[list[int | None]]:
    return [[epoch_ms(start), epoch_ms(end)] for start, end in spans]


def flag_json(flag: FlagRecord) -> dict[str, Any]:
    return {
        "flag_id": flag.flag_id,
        "by": flag.by,
        "note": flag.note,
        "severity": flag.severity,
        "ts": epoch_ms(flag.ts),
    }


def gap_json(candidate_id: str, gap: Gap) -> dict[str, Any]:
    """A gap as the timeline API and the archive's manifest show it."""
    return {
        "alert_id": alert_id(candidate_id, gap),
        "kind": gap.kind,
        "cause": gap.cause,
        "started_at": epoch_ms(gap.start),
        "ended_at": epoch_ms(gap.end),
        "peer_id": gap.peer_id or None,
        "backfilled_s": gap.backfilled_s,
        "backfilled": gap.backfilled,
    }


def timeline_json(
    user: UserRecord, timeline: Timeline, flags: list[FlagRecord], *, now: float, threshold_s: float
) -> dict[str, Any]:
    return {
        "event_id": user.event_id,
        "candidate_id": user.user_id,
        "name": user.name,
        "now": epoch_ms(now),
        "threshold_s": threshold_s,
        "intervals": {
            "present": _spans(timeline.present),
            "in_room": _spans(timeline.in_room),
            "video": _spans(timeline.video),
            "recorded": _spans(timeline.recorded),
            "disputed": _spans(timeline.disputed),
            "backfilled": _spans(timeline.backfilled),
        },
        "gaps": [gap_json(user.user_id, g) for g in timeline.gaps],
        "recordings": [
            {
                "peer_id": p.peer_id,
                "room_id": p.room_id,
                "session_id": p.session_id,
                "status": p.status,
                "started_at": epoch_ms(p.start),
                "ended_at": epoch_ms(p.end),
                "due_at": epoch_ms(p.due_at),
            }
            for p in timeline.peers
            if p.status != "not_expected"
        ],
        "flags": [flag_json(f) for f in flags],
    }


def report_row(user: UserRecord, timeline: Timeline, flags: int, *, now: float) -> dict[str, Any]:
    expected_s, recorded_s = timeline.coverage(now)
    backfilled_s = timeline.backfill_share(now)
    statuses = [p.status for p in timeline.peers if p.status != "not_expected"]

    def pct(seconds: float) -> float:
        return round(100 * seconds / expected_s, 1) if expected_s > 0 else 0.0

    return {
        "candidate_id": user.user_id,
        "name": user.name or "",
        "expected_minutes": round(expected_s / 60, 2),
        "recorded_minutes": round(recorded_s / 60, 2),
        "coverage_pct": pct(recorded_s + backfilled_s),
        "gaps": len(timeline.gaps),
        "flags": flags,
        "recordings_expected": len(statuses),
        "recordings_arrived": statuses.count("recorded"),
        "recordings_missing": statuses.count("missing"),
        "recordings_failed": statuses.count("failed"),
        "backfilled_minutes": round(backfilled_s / 60, 2),
        "recorded_pct": pct(recorded_s),
        "backfilled_pct": pct(backfilled_s),
    }


def report_json(
    event_id: str, rows: list[dict[str, Any]], *, now: float, threshold_s: float
) -> dict[str, Any]:
    """The event's report as `GET .../report` answers it (and `report.ready` carries it)."""
    return {
        "event_id": event_id,
        "generated_at": epoch_ms(now),
        "threshold_s": threshold_s,
        "candidates": rows,
    }


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""A cell starting with one of these is read as a formula (or a hidden one) by spreadsheets (OWASP,
"CSV injection"); ids and names come from the host and its users, so no text cell is trusted."""


def spreadsheet_text(value: object) -> object:
    """Text that a spreadsheet would evaluate gets a leading `'` (shown as text); numbers pass."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def report_csv(rows: list[dict[str, Any]]) -> str:
    """RFC 4180 text (CRLF line ends), every text cell escaped against formula injection."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=REPORT_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({column: spreadsheet_text(value) for column, value in row.items()})
    return out.getvalue()
