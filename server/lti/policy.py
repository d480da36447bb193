"""The ACS policy at work: alerts and proctor flags of LTI candidates become ACS calls (the decisions are
server/lti/acs_rules.py's, the policy is the event's `lti` field, server/api/lti_config.py).

It runs beside the monitor and the hub, never in their way: each hook only spawns a background task.
Each call is made once: its key (action, event, alert or flag id) is marked in the store's dedupe keys
before the call, so two nodes or two evaluations never send one twice. The monitor evaluates a
timeline when a signal arrives, so a long video gap is flagged at the first evaluation that knows it is
long (at the latest when the video comes back) and its extra time is sent when it closes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from server.api.errors import ApiError
from server.api.lti_config import LtiPolicy, resolve
from server.background import Background
from server.lti.acs_rules import Due, proctor_flag_due, timeline_due
from server.lti.control import AcsService
from server.recording.monitor.timeline import Timeline
from server.store.base import Store
from server.store.lti import LtiAttempt
from server.store.records import FlagRecord

log = logging.getLogger("proctorhub.lti.policy")

SENT_TTL_S = 30 * 86_400.0
EVENT_PREFIX = "lti-"


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
        """The monitor's change hook."""
        if event_id.startswith(EVENT_PREFIX):
            self._background.spawn("lti acs policy", self._timeline(event_id, candidate_id, timeline))

    def flag_added(self, flag: FlagRecord) -> None:
        """The hub's flag hook: a proctor flagged a candidate."""
        if flag.event_id.startswith(EVENT_PREFIX):
            self._background.spawn("lti acs proctor flag", self._proctor_flag(flag))

    async def _context(self, event_id: str, candidate_id: str) -> tuple[LtiPolicy, LtiAttempt] | None:
        """The event's policy and the candidate's open attempt, if it has one."""
        open_ = [a for a in await self._store.lti.attempts(event_id, candidate_id) if a.ended_at is None]
        if not open_:
            return None
        config = await self._store.events.get_event(event_id)
        policy = resolve(config.lti if config else None, default_gap_s=self._gap_flag_s)
        return policy, open_[-1]

    async def _timeline(self, event_id: str, candidate_id: str, timeline: Timeline) -> None:
        found = await self._context(event_id, candidate_id)
        if found is None:
            return
        policy, attempt = found
        due = timeline_due(
            policy,
            candidate_id,
            timeline,
            now=self._clock(),
            since=attempt.launched_at,
            actions=offered(attempt),
        )
        await self._send(event_id, candidate_id, due)

    async def _proctor_flag(self, flag: FlagRecord) -> None:
        found = await self._context(flag.event_id, flag.candidate_id)
        if found is None:
            return
        policy, attempt = found
        due = proctor_flag_due(policy, flag, actions=offered(attempt))
        await self._send(flag.event_id, flag.candidate_id, [due] if due else [])

    async def _send(self, event_id: str, candidate_id: str, due: list[Due]) -> None:
        for one in due:
            action = one.request.action
            key = f"lti-acs-{action}:{event_id}:{one.key}"
            if not await self._store.dedupe.once(key, now=self._clock(), ttl_s=SENT_TTL_S):
                continue
            try:
                call = await self._acs.call(event_id, candidate_id, one.request, by="policy")
            except ApiError as exc:
                log.warning("ACS %s for %s/%s not sent: %s", action, event_id, candidate_id, exc.message)
                continue
            if call.state == "failed":
                log.warning("ACS %s for %s/%s failed: %s", action, event_id, candidate_id, call.error)

    async def stop(self) -> None:
        await self._background.stop()


def offered(attempt: LtiAttempt) -> frozenset[str]:
    actions = (attempt.acs or {}).get("actions")
    return frozenset(a for a in actions if isinstance(a, str)) if isinstance(actions, list) else frozenset()
