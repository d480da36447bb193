"""`report.ready`: an event's report, once every candidate finished and every recording is accounted for.

"Accounted for": each recording the monitor expects is recorded, failed or declared missing (none
is still pending: its session has not closed, or its deadline, RECORDING_DEADLINE_S, has not
passed). A candidate who never finishes (closes the tab and never comes back) keeps the report from
being ready; the host app can still read it with `GET /api/v1/events/{id}/report`.

One node at a time (a lock) looks every `interval_s` at the events that have somewhere to send to
and were not reported yet; a mark in the store keeps each event's report to one `report.ready`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from server.hostevents.catalog import HostEvent, report_event
from server.recording.monitor.report import report_json, report_row
from server.recording.monitor.timeline import Timeline
from server.store.base import Store
from server.store.records import UserRecord

LOCK = "hostevents-reports"
MARK_TTL_S = 90 * 86_400


def report_ready(candidates: Sequence[UserRecord], timelines: Sequence[Timeline]) -> bool:
    """Every candidate finished, and no recording still awaited. Pure."""
    return (
        bool(candidates)
        and all(c.presence == "finished" for c in candidates)
        and not any(p.status == "pending" for t in timelines for p in t.peers)
    )


def _mark(event_id: str) -> str:
    return f"hostevents:report:{event_id}"


class ReportWatch:
    def __init__(
        self,
        store: Store,
        timeline_of: Callable[[str, str], Awaitable[Timeline]],
        queue: Callable[[HostEvent], Awaitable[int]],
        has_destination: Callable[[str | None], bool],
        *,
        clock: Callable[[], float],
        node_id: str,
        interval_s: float,
        threshold_s: float,
    ) -> None:
        self._store = store
        self._timeline_of = timeline_of
        self._queue = queue
        self._has_destination = has_destination
        self._clock = clock
        self._node_id = node_id
        self.interval_s = interval_s
        self._threshold_s = threshold_s

    async def tick(self) -> None:
        store = self._store
        fence = await store.locks.acquire_lock(
            LOCK, self._node_id, now=self._clock(), ttl_s=max(30.0, 3 * self.interval_s)
        )
        if fence is None:
            return  # another node looks
        events = [e for e in await store.events.list_events() if self._has_destination(e.events_url)]
        done = await store.dedupe.seen([_mark(e.event_id) for e in events], now=self._clock())
        for event, reported in zip(events, done, strict=True):
            if not reported:
                await self.check(event.event_id)

    async def check(self, event_id: str) -> bool:
        """Send the event's report if it is ready and was not sent; whether it was queued now."""
        users = [u for u in await self._store.presence.list_users(event_id) if u.role == "candidate"]
        if not users or any(u.presence != "finished" for u in users):
            return False
        timelines = await asyncio.gather(*(self._timeline_of(event_id, u.user_id) for u in users))
        if not report_ready(users, timelines):
            return False
        now = self._clock()
        rows = [report_row(u, t, u.flags, now=now) for u, t in zip(users, timelines, strict=True)]
        report = report_json(event_id, rows, now=now, threshold_s=self._threshold_s)
        await self._queue(report_event(event_id, report, f"/api/v1/events/{event_id}/report"))
        await self._store.dedupe.mark_seen([_mark(event_id)], now=now, ttl_s=MARK_TTL_S)
        return True
