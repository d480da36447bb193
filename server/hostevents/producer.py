"""The producers' side: `emit` an event and it is addressed and written to the outbox, in the background.

An event goes to its event's own URLs (`events_url` in the event config, "" for none) or else to
HUB_EVENTS_URL. The write never holds up nor fails the producer (a timeline evaluation, a proctor's
flag): a store failure is logged (once, then once a minute), counted, and that event is not sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from server.background import Background, Outage
from server.config import Settings, http_urls
from server.hostevents.catalog import HostEvent, deliveries
from server.hostevents.metrics import HostEventMetrics
from server.store.events import EventStore
from server.store.outbox import Outbox

log = logging.getLogger("proctorhub.hostevents")


class HostEvents:
    def __init__(
        self,
        settings: Settings,
        events: EventStore,
        outbox: Outbox,
        metrics: HostEventMetrics,
        background: Background,
        clock: Callable[[], float],
    ) -> None:
        self._default_urls = settings.events_urls
        self.enabled = bool(settings.events_secret)
        """Without a secret nothing can be signed: nothing is queued (the API refuses event URLs)."""
        self._events = events
        self._outbox = outbox
        self._metrics = metrics
        self._background = background
        self._clock = clock
        self._outage = Outage(log, "host events: writing to the outbox")
        self.queued: Callable[[], None] = lambda: None
        """Told after new deliveries were stored (the node's sender looks at once)."""

    def emit(self, event: HostEvent) -> None:
        """Queue `event` for the host app without waiting; never raises."""
        if self.enabled and not self._background.stopping:
            self._background.spawn("host event", self._write_or_count(event))

    def sends_for(self, events_url: str | None) -> bool:
        """Whether an event with this `events_url` setting has anywhere to send to."""
        return self.enabled and bool(self._default_urls if events_url is None else events_url)

    async def queue(self, event: HostEvent) -> int:
        """Address and store `event` now; how many deliveries were new. Raises if the store fails."""
        urls = await self._urls(event.event_id) if self.enabled else ()
        added = await self._outbox.add(deliveries(event, urls, self._clock())) if urls else 0
        self._metrics.queued.labels(event.type).inc(added)
        if added:
            self.queued()
        return added

    async def _write_or_count(self, event: HostEvent) -> None:
        try:
            await self.queue(event)
        except Exception as exc:
            self._metrics.queue_errors.inc()
            self._outage.failed(exc)
        else:
            self._outage.recovered()

    async def _urls(self, event_id: str) -> tuple[str, ...]:
        config = await self._events.get_event(event_id)
        if config is None or config.events_url is None:
            return self._default_urls
        return http_urls(config.events_url)
