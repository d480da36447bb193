"""What an event's ACS policy (server/api/lti_config.py) asks of one candidate's attempt. Pure.

- `flag`: an alert whose kind the policy lists (a video gap or dispute only once it lasted
  `flag_gap_s`), and a proctor's flag of a listed severity. `reason_code` is the alert kind (or
  `proctor.flag`), `incident_severity` comes from the kind (or the proctor's severity), `incident_time`
  is when the gap began (or the flag was set).
- `update` with `extra_time`: a video gap whose cause the policy lists (by default only 100ms's:
  `peer_left_100ms`), once it has closed, for its seconds inside the attempt (rounded up). It is sent
  when the gap closes, while the attempt is open, so the candidate gets the time back during the exam
  (an attempt that has ended has no use for it). One `update` per gap: the platform adds them up.

Each decision carries a key naming what it is about (the alert id, the flag id), so the caller sends
it once whatever the number of evaluations or nodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from server.api.lti_config import LtiPolicy
from server.lti.messages import AcsRequest
from server.recording.monitor.alerts import alert_id
from server.recording.monitor.timeline import (
    RECORDING_FAILED,
    RECORDING_MISSING,
    SPAN_KINDS,
    VIDEO_DISPUTED,
    VIDEO_GAP,
    Gap,
    Timeline,
)
from server.store.records import FlagRecord

ALERT_SEVERITY = {RECORDING_FAILED: 0.9, RECORDING_MISSING: 0.9, VIDEO_DISPUTED: 0.7, VIDEO_GAP: 0.6}
PROCTOR_SEVERITY = {"low": 0.3, "medium": 0.6, "high": 0.9}
PROCTOR_FLAG = "proctor.flag"


@dataclass(frozen=True)
class Due:
    """One ACS call the policy wants: `key` (with the action) is what makes it once-only."""

    key: str
    request: AcsRequest


def _length(gap: Gap, now: float) -> float:
    return (gap.end if gap.end is not None else now) - gap.start


def _flag(candidate_id: str, gap: Gap, now: float) -> Due:
    message = f"{gap.kind} ({gap.cause})"
    if gap.kind in SPAN_KINDS:
        message += f", {round(_length(gap, now))} s" + ("" if gap.end is not None else " so far")
    request = AcsRequest(
        "flag",
        reason_code=gap.kind,
        reason_msg=message,
        incident_severity=ALERT_SEVERITY[gap.kind],
        at=gap.start,
    )
    return Due(alert_id(candidate_id, gap), request)


def _extra_time(candidate_id: str, gap: Gap, since: float) -> Due | None:
    assert gap.end is not None
    seconds = math.ceil(gap.end - max(gap.start, since) - 1e-9)
    if seconds <= 0:
        return None
    request = AcsRequest(
        "update",
        reason_code=gap.kind,
        reason_msg=f"extra time for a video gap that was not the candidate's ({gap.cause}), {seconds} s",
        extra_time=min(seconds, 86_400),
        at=gap.start,
    )
    return Due(alert_id(candidate_id, gap), request)


def timeline_due(
    policy: LtiPolicy,
    candidate_id: str,
    timeline: Timeline,
    *,
    now: float,
    since: float,
    actions: frozenset[str],
) -> list[Due]:
    """The flags and extra time the timeline's gaps call for in an attempt launched at `since` whose
    platform offers `actions`."""
    due: list[Due] = []
    for gap in timeline.gaps:
        if gap.end is not None and gap.end < since:
            continue  # over before this attempt began
        long_enough = gap.kind not in SPAN_KINDS or _length(gap, now) >= policy.flag_gap_s
        if (
            "flag" in actions
            and gap.kind in policy.flag_alerts
            and gap.kind in ALERT_SEVERITY
            and long_enough
        ):
            due.append(_flag(candidate_id, gap, now))
        if (
            "update" in actions
            and gap.kind == VIDEO_GAP
            and gap.end is not None
            and gap.cause in policy.extra_time_causes
        ):
            extra = _extra_time(candidate_id, gap, since)
            if extra is not None:
                due.append(extra)
    return due


def proctor_flag_due(policy: LtiPolicy, flag: FlagRecord, *, actions: frozenset[str]) -> Due | None:
    """A proctor's flag the policy sends on to the platform, if any."""
    if "flag" not in actions or flag.severity not in policy.flag_proctor_severities:
        return None
    request = AcsRequest(
        "flag",
        reason_code=PROCTOR_FLAG,
        reason_msg=f"{flag.severity} flag by {flag.by}: {flag.note}"[:1000],
        incident_severity=PROCTOR_SEVERITY.get(flag.severity, 0.5),
        at=flag.ts,
    )
    return Due(f"proctor:{flag.flag_id}", request)
