"""The `lti` field of an event's config: which of its candidates' alerts and flags the hub sends to the
learning platform's Assessment Control Service, and which gaps give extra time. Pure.

    {"flag_alerts": ["recording.missing", "recording.failed", "video.gap"],   alerts that become `flag`
     "flag_gap_s": 60,                    a video gap or dispute shorter than this is not flagged
     "flag_proctor_severities": ["high"], a proctor's flag of these severities becomes `flag`
     "extra_time_causes": ["peer_left_100ms"]}  video gaps of these causes become `update` + extra_time

Every member is optional: an omitted one (and an event without `lti`) takes the default above, and
`flag_gap_s` the hub's LTI_ACS_FLAG_GAP_S. The stored value is what was given, so a later change of
that setting still reaches events that never chose their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from server.recording.monitor.timeline import RECORDING_FAILED, RECORDING_MISSING, VIDEO_DISPUTED, VIDEO_GAP

FLAGGABLE_ALERTS = (RECORDING_MISSING, RECORDING_FAILED, VIDEO_GAP, VIDEO_DISPUTED)
PROCTOR_SEVERITIES = ("low", "medium", "high")
GAP_CAUSES = ("peer_left_100ms", "socket_lost", "peer_left", "video_unpublished")
"""The causes of a video gap (server/recording/monitor/timeline.py); only the first is 100ms's, the
others are, as far as the hub can tell, the candidate's (network, closed window, camera off)."""
NOT_THE_CANDIDATES = ("peer_left_100ms",)

DEFAULT_FLAG_ALERTS = (RECORDING_MISSING, RECORDING_FAILED, VIDEO_GAP)
DEFAULT_PROCTOR_SEVERITIES = ("high",)
MIN_GAP_S, MAX_GAP_S = 0.5, 86_400.0


class PolicyInvalid(ValueError):
    """`member` (e.g. "flag_gap_s") of the `lti` field is wrong, as `problem` says."""

    def __init__(self, member: str, problem: str) -> None:
        super().__init__(f"{member}: {problem}")
        self.member = member
        self.problem = problem


@dataclass(frozen=True)
class LtiPolicy:
    """An event's ACS policy with every default filled in."""

    flag_alerts: frozenset[str]
    flag_gap_s: float
    flag_proctor_severities: frozenset[str]
    extra_time_causes: frozenset[str]


def _choices(member: str, value: object, allowed: tuple[str, ...]) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyInvalid(member, f"must be a list of {', '.join(allowed)}")
    unknown = [v for v in value if v not in allowed]
    if unknown:
        raise PolicyInvalid(member, f"{unknown[0][:64]!r} is not one of {', '.join(allowed)}")
    return [v for v in allowed if v in value]  # one order, no repeats


def _gap_s(member: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not MIN_GAP_S <= value <= MAX_GAP_S:
        raise PolicyInvalid(member, f"must be a number of seconds from {MIN_GAP_S} to {MAX_GAP_S:.0f}")
    return value


def _one_of(allowed: tuple[str, ...]) -> Callable[[str, object], list[str]]:
    return lambda member, value: _choices(member, value, allowed)


MEMBERS: dict[str, Callable[[str, object], Any]] = {
    "flag_alerts": _one_of(FLAGGABLE_ALERTS),
    "flag_gap_s": _gap_s,
    "flag_proctor_severities": _one_of(PROCTOR_SEVERITIES),
    "extra_time_causes": _one_of(GAP_CAUSES),
}


def parse_lti(value: object) -> dict[str, Any] | None:
    """The `lti` field as it is stored: null (every default), or an object of known members."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise PolicyInvalid("lti", "must be null or an object")
    for name in value:
        if name not in MEMBERS:
            raise PolicyInvalid(str(name)[:64], "unknown member")
    return {name: MEMBERS[name](name, v) for name, v in value.items()}


def resolve(stored: dict[str, Any] | None, *, default_gap_s: float) -> LtiPolicy:
    """The policy an event's stored `lti` field means (`default_gap_s`: LTI_ACS_FLAG_GAP_S)."""
    raw = stored or {}
    return LtiPolicy(
        flag_alerts=frozenset(raw.get("flag_alerts", DEFAULT_FLAG_ALERTS)),
        flag_gap_s=float(raw.get("flag_gap_s", default_gap_s)),
        flag_proctor_severities=frozenset(raw.get("flag_proctor_severities", DEFAULT_PROCTOR_SEVERITIES)),
        extra_time_causes=frozenset(raw.get("extra_time_causes", NOT_THE_CANDIDATES)),
    )
