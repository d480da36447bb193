"""Prometheus metrics of the events to the host app, on the hub's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from server.hostevents.catalog import TYPES
from server.store.outbox import STATES

OUTCOMES = ("delivered", "retry", "dead", "stale")


class HostEventMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.queued = Counter(
            "proctorhub_host_events_queued",
            "Deliveries written to the outbox, by event type",
            ["type"],
            registry=r,
        )
        self.queue_errors = Counter(
            "proctorhub_host_events_queue_errors",
            "Events that could not be written to the outbox (the store failed): not sent",
            registry=r,
        )
        self.attempts = Counter(
            "proctorhub_host_events_attempts",
            "Delivery attempts by outcome (stale: the claim had run out, the result was not recorded)",
            ["outcome"],
            registry=r,
        )
        self.deliveries = Gauge(
            "proctorhub_host_events_deliveries",
            "Deliveries in the outbox by state, all nodes (refreshed every few seconds)",
            ["state"],
            registry=r,
        )
        self.delay = Histogram(
            "proctorhub_host_events_delay_seconds",
            "From an event's creation to the 2xx that delivered it",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 21_600, 86_400),
            registry=r,
        )
        for event_type in TYPES:
            self.queued.labels(event_type)
        for outcome in OUTCOMES:
            self.attempts.labels(outcome)
        for state in STATES:
            self.deliveries.labels(state)
