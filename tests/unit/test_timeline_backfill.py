"""Backfilled segments in the timeline, its alerts and the report (extension E15)."""

from __future__ import annotations

from server.recording.monitor.alerts import alert_changes
from server.recording.monitor.report import report_row
from server.recording.monitor.timeline import RECORDING_FAILED, VIDEO_GAP, Rules, Signal, evaluate
from server.store.records import UserRecord
from tests.signal_stories import backfilled, failed, join, leave, media, offline, online

RULES = Rules(threshold_s=10, deadline_s=30, backfill_slack_s=1)
FAILED = [
    online(0),
    media(0),
    join("p1", 0),
    Signal("finished", 60, "finished"),
    leave("p1", 60),
    failed("p1", 61),
]


def _user() -> UserRecord:
    return UserRecord(event_id="e1", user_id="c1", role="candidate", name="Ada")


def test_a_failed_recording_covered_by_segments_is_a_backfilled_gap_and_its_alert_closes() -> None:
    segments = [backfilled("s0", 0, 29.8), backfilled("s1", 30, 30.2)]  # 0.2 s between them: a restart
    timeline = evaluate([*FAILED, *segments], 70, RULES)
    (gap,) = timeline.gaps
    assert (gap.kind, gap.cause, gap.backfilled, gap.backfilled_s) == (
        RECORDING_FAILED,
        "recording_failed",
        True,
        59.8,
    )
    (change,) = alert_changes("c1", "r1", timeline, {})
    assert change.alert["state"] == "closed" and change.alert["detail"]["backfilled"] is True


def test_a_partly_backfilled_gap_keeps_its_alert_open_and_counts_its_seconds() -> None:
    timeline = evaluate([*FAILED, backfilled("s0", 0, 30)], 70, RULES)
    (gap,) = timeline.gaps
    assert (gap.backfilled, gap.backfilled_s) == (False, 30)
    (change,) = alert_changes("c1", "r1", timeline, {})
    assert change.alert["state"] == "open" and "backfilled" not in change.alert["detail"]


def test_a_video_gap_keeps_its_cause_when_backfilled() -> None:
    signals = [online(0), media(0), join("p1", 0), offline(20), online(40), backfilled("s0", 19, 22)]
    gap = next(g for g in evaluate(signals, 100, RULES).gaps if g.kind == VIDEO_GAP)
    assert (gap.cause, gap.backfilled, gap.backfilled_s) == ("socket_lost", True, 20)


def test_the_report_counts_recorded_and_backfilled_time_with_both_shares() -> None:
    row = report_row(_user(), evaluate([*FAILED, backfilled("s0", 0, 30)], 70, RULES), 0, now=70)
    assert (row["coverage_pct"], row["recorded_pct"], row["backfilled_pct"]) == (50.0, 0.0, 50.0)
    assert row["backfilled_minutes"] == 0.5
    full = report_row(_user(), evaluate([*FAILED, backfilled("s0", 0, 60)], 70, RULES), 0, now=70)
    assert full["coverage_pct"] == 100.0
