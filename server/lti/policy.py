"""Alerts that become ACS `flag` calls, for candidates launched through LTI whose platform offers `flag`.

The default policy (per-event settings are not there yet): a failed or missing recording (severity 0.9)
and a video gap of at least LTI_ACS_FLAG_GAP_S (severity 0.6) are flagged once each: the alert id is
marked in the store's dedupe keys before the call, so two nodes or two evaluations never flag one
gap twice. The monitor evaluates a timeline when a signal arrives, so a long video gap is flagged at
the first evaluation that knows it is long: at the latest when the video comes back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from server.api.errors import ApiError
from server.background import Background
from server.lti.control import AcsService
from server.lti.messages import AcsRequest
from server.recording.monitor.alerts import alert_id
from server.recording.monitor.timeline import RECORDING_FAILED, RECORDING_MISSING, VIDEO_GAP, Timeline
from server.store.base import Store

log = logging.getLogger("proctorhub.lti.policy")

SEVERITY = {RECORDING_FAILED: 0.9, RECORDING_MISSING: 0.9, VIDEO_GAP: 0.6}
FLAGGED_TTL_S = 30 * 86_400.0
EVENT_PREFIX = "lti-"


def flags_due(
    candidate_id: str, timeline: Timeline, *, now: float, gap_flag_s: float
) -> list[tuple[str, AcsRequest]]:
    """(alert id, flag request) for every gap of the timeline the policy flags (pure)."""
    due = []
    for gap in timeline.gaps:
        if gap.kind not in SEVERITY:
            continue
        length = (gap.end if gap.end is not None else now) - gap.start
        if gap.kind == VIDEO_GAP and length < gap_flag_s:
            continue
        message = f"{gap.kind} ({gap.cause})" + (f", {round(length)} s" if gap.kind == VIDEO_GAP else "")
        request = AcsRequest(
            "flag", reason_code=gap.kind, reason_msg=message, incident_severity=SEVERITY[gap.kind]
        )
        due.append((alert_id(candidate_id, gap), request))
    return due


class AcsPolicy:
    def __init__(
        self, store: Store, acs: AcsService, *, gap_flag_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._acs = acs
        self._gap_flag_s = gap_flag_s
        self._clock = clock
        self._background = Background(log)

    def changed(self, event_id: str, candidate_id: str, timeline: Timeline) -> None:
        """The monitor's change hook: flags are sent in the background, never in the monitor's way."""
        if not event_id.startswith(EVENT_PREFIX):
            return
        due = flags_due(candidate_id, timeline, now=self._clock(), gap_flag_s=self._gap_flag_s)
        if due:
            self._background.spawn("lti acs flags", self._flag(event_id, candidate_id, due))

    async def _flag(self, event_id: str, candidate_id: str, due: list[tuple[str, AcsRequest]]) -> None:
        attempts = [a for a in await self._store.lti.attempts(event_id, candidate_id) if a.ended_at is None]
        if not attempts or "flag" not in (attempts[-1].acs or {}).get("actions", []):
            return
        for key, request in due:
            if not await self._store.dedupe.once(
                f"lti-acs-flag:{event_id}:{key}", now=self._clock(), ttl_s=FLAGGED_TTL_S
            ):
                continue
            try:
                call = await self._acs.call(event_id, candidate_id, request, by="policy")
            except ApiError as exc:
                log.warning("ACS flag for %s/%s not sent: %s", event_id, candidate_id, exc.message)
                continue
            if call.state != "done":
                log.warning("ACS flag for %s/%s failed: %s", event_id, candidate_id, call.error)

    async def stop(self) -> None:
        await self._background.stop()
