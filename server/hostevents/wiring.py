"""The host-events part of a node: the producers' hooks, the delivery loop and the report watch.

The app hands the hooks to the parts that see the facts (the recording monitor's alert changes, the
hub's flags and presence changes); each hook turns a fact into an event and `emit`s it, which
returns at once. Without HUB_EVENTS_SECRET nothing is queued and no loop runs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from server.background import Background, Counted
from server.config import Settings
from server.hostevents.catalog import alert_events, finished_event, flag_event
from server.hostevents.metrics import HostEventMetrics
from server.hostevents.producer import HostEvents
from server.hostevents.reports import ReportWatch
from server.hostevents.sender import Sender
from server.recording.monitor.timeline import Timeline
from server.store.base import Store
from server.store.records import FlagRecord, UserRecord

log = logging.getLogger("proctorhub.hostevents")

AlertPair = tuple[dict[str, Any] | None, dict[str, Any]]


class HostEventsPart:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        metrics: HostEventMetrics,
        *,
        timeline_of: Callable[[str, str], Awaitable[Timeline]],
        clock: Callable[[], float],
        on_failure: Counted,
        threshold_s: float,
    ) -> None:
        self._background = Background(log, on_failure=on_failure)
        self.events = HostEvents(settings, store.events, store.outbox, metrics, self._background, clock)
        self._sender = (
            Sender(settings, store.outbox, metrics, self._background, clock, on_failure)
            if self.events.enabled
            else None
        )
        if self._sender is not None:
            self.events.queued = self._sender.wake
        self._reports = ReportWatch(
            store,
            timeline_of,
            self.events.queue,
            self.events.sends_for,
            clock=clock,
            node_id=settings.node_id,
            interval_s=settings.events_report_check_s,
            threshold_s=threshold_s,
        )

    # ------------------------------------------------------------------ hooks (sync, never raise)

    def alerts_changed(self, event_id: str, changes: list[AlertPair]) -> None:
        """(alert as stored before or None, alert now) for each alert a timeline evaluation changed."""
        for before, after in changes:
            for event in alert_events(event_id, before, after):
                self.events.emit(event)

    def flag_added(self, flag: FlagRecord) -> None:
        self.events.emit(flag_event(flag))

    def presence_changed(self, record: UserRecord) -> None:
        if record.role == "candidate" and record.presence == "finished":
            self.events.emit(finished_event(record))

    # ------------------------------------------------------------------ life

    async def start(self) -> None:
        if self._sender is None:
            return
        self._sender.start()
        self._background.every("host events reports", self._reports.interval_s, self._reports.tick)

    async def stop(self) -> None:
        """Stop sending; queued writes get a moment to finish (what is stored stays for the next node)."""
        await self._background.stop(wait_s=1.0)
        if self._sender is not None:
            await self._sender.aclose()
