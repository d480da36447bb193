"""Prometheus metrics of one hub process (its own registry, so tests can run several apps)."""

from __future__ import annotations

import collections
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from server.protocol import CLIENT_TYPES


class WebhookMetrics:
    """100ms webhooks: intake answers, the inbox's work, relays. Registered on the hub's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = r = registry
        self.received = Counter("proctorhub_webhooks_received", "POST /webhooks/100ms requests", registry=r)
        self.accepted = Counter("proctorhub_webhooks_accepted", "Webhooks stored in the inbox", registry=r)
        self.ignored = Counter(
            "proctorhub_webhooks_ignored",
            "Webhooks of a type not in the catalogue (200, not stored)",
            registry=r,
        )
        self.refused = Counter(
            "proctorhub_webhooks_refused", "Webhooks refused, by reason", ["reason"], registry=r
        )
        self.duplicates = Counter(
            "proctorhub_webhooks_duplicates", "Inbox entries whose event id was already handled", registry=r
        )
        self.processed = Counter(
            "proctorhub_webhooks_processed",
            "Inbox entries handled and acked (own rooms, relayed, foreign)",
            registry=r,
        )
        self.failed = Counter(
            "proctorhub_webhooks_failed", "Handling attempts that raised (retried later)", registry=r
        )
        self.parked = Counter(
            "proctorhub_webhooks_parked",
            "Entries given up on, kept in the dead-letter list",
            ["error"],
            registry=r,
        )
        self.foreign = Counter(
            "proctorhub_webhooks_foreign",
            "Events for rooms of no known environment (not processed)",
            registry=r,
        )
        self.relayed = Counter(
            "proctorhub_webhooks_relayed", "Events forwarded to another environment", ["target"], registry=r
        )
        self.relay_errors = Counter(
            "proctorhub_webhooks_relay_errors",
            "Forwarding attempts that failed (retried)",
            ["target"],
            registry=r,
        )
        self.store_errors = Counter(
            "proctorhub_webhooks_store_errors", "Inbox reads or acks that failed (retried)", registry=r
        )
        self.backlog = Gauge(
            "proctorhub_webhooks_backlog", "Inbox entries stored and not yet acked (all nodes)", registry=r
        )
        for reason in (
            "not_allowed",
            "disabled",
            "missing_secret",
            "bad_secret",
            "malformed",
            "store_unavailable",
        ):
            self.refused.labels(reason)


class CountsByLabel(Collector):
    """A counter with one label, bumped in a plain dict and read when scraped: called once per frame
    written, prometheus-client's labelled `Counter` (a child lookup and a lock per call) was a tenth
    of the hub's own time per socket in a broadcast."""

    def __init__(self, name: str, documentation: str, label: str, *, registry: CollectorRegistry) -> None:
        self.name, self.documentation, self.label = name, documentation, label
        self.counts: collections.Counter[str] = collections.Counter()
        registry.register(self)

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, count in sorted(self.counts.items()):
            family.add_metric([value], count)
        yield family


class HubMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.webhooks = WebhookMetrics(r)
        # process_resident_memory_bytes, process_cpu_seconds_total, ...: RSS and CPU over time for the
        # load tester (and any scraper) without access to the hub's machine
        ProcessCollector(registry=r)
        self.connections = Gauge("proctorhub_connections", "Open authenticated sockets", ["role"], registry=r)
        self.messages_in = Counter("proctorhub_messages_in", "Client messages received", ["type"], registry=r)
        self.messages_out = CountsByLabel(
            "proctorhub_messages_out", "Server messages written to sockets", "type", registry=r
        )
        self.presence = Gauge(
            "proctorhub_presence_users", "Users by role and presence", ["role", "presence"], registry=r
        )
        self.send_queue_drops = Counter(
            "proctorhub_send_queue_drops",
            "Messages not delivered because a client's send queue overflowed or stuck",
            registry=r,
        )
        self.auth_failures = Counter("proctorhub_auth_failures", "Refused handshakes", ["reason"], registry=r)
        self.closes = Counter(
            "proctorhub_closes", "Sockets closed by the hub, by close code", ["code"], registry=r
        )
        self.handler_errors = Counter(
            "proctorhub_handler_errors", "Unexpected errors in message handlers", registry=r
        )
        self.fanout_errors = Counter(
            "proctorhub_fanout_errors",
            "Cross-node messages that could not be decoded or delivered",
            registry=r,
        )
        self.publish_failures = Gauge(
            "proctorhub_publish_failures",
            "Cross-node messages the store did not take since start (Redis PUBLISH, not waited for)",
            registry=r,
        )
        self.tokens_minted = Counter(
            "proctorhub_tokens_minted", "100ms app tokens minted and held", registry=r
        )
        self.token_refreshes_sent = Counter(
            "proctorhub_token_refreshes_sent", "token.refresh pushes queued", registry=r
        )
        self.token_refreshes_acked = Counter(
            "proctorhub_token_refreshes_acked", "token pushes acked by clients", registry=r
        )
        self.token_resends = Counter(
            "proctorhub_token_resends", "token.refresh sent again for want of an ack", registry=r
        )
        self.token_refresh_errors = Counter(
            "proctorhub_token_refresh_errors", "token refreshes that failed and were retried", registry=r
        )
        self.token_margin = Histogram(
            "proctorhub_token_margin_seconds",
            "Seconds left on the old 100ms token when the client acked its replacement",
            buckets=(0, 1, 2, 5, 10, 15, 20, 25, 30, 40, 60, 90, 120, 300, 600, 1800, 3600),
            registry=r,
        )
        self.room_assign_failures = Counter(
            "proctorhub_room_assign_failures",
            "room.assign that could not be made at connect (retried)",
            registry=r,
        )
        self.allocation_passes = Counter(
            "proctorhub_allocation_passes", "Allocation passes this node ran", registry=r
        )
        self.allocation_lock_waits = Counter(
            "proctorhub_allocation_lock_waits",
            "Times a pass waited for another node's allocation lock",
            registry=r,
        )
        self.alerts = Counter(
            "proctorhub_alerts",
            "Recording monitor alerts published, by kind and state",
            ["kind", "state"],
            registry=r,
        )
        self.background_failures = Counter(
            "proctorhub_background_failures",
            "Failures of background loops and tasks (logged once, then once a minute), by name",
            ["name"],
            registry=r,
        )
        self.timeline_checks = Counter(
            "proctorhub_timeline_checks", "Candidate timelines evaluated by this node", registry=r
        )
        self.reconciles = Counter(
            "proctorhub_recording_reconciles",
            "Passes asking 100ms about every room of every event, completed by this node",
            registry=r,
        )
        self.joins_waiting = Gauge(
            "proctorhub_joins_waiting",
            "Authenticated sockets queued for a join slot (HUB_JOIN_CONCURRENCY)",
            registry=r,
        )
        self.disconnects_unrecorded = Gauge(
            "proctorhub_disconnects_unrecorded",
            "Closed sockets whose disconnect the store has not taken yet (written again every second)",
            registry=r,
        )
        self.joins_running = Gauge("proctorhub_joins_running", "Joins attaching now", registry=r)
        self.joins_refused = Counter(
            "proctorhub_joins_refused",
            "Sockets closed 1013 after waiting HUB_JOIN_DEADLINE_S for a join slot",
            registry=r,
        )
        self.archive_refused = Counter(
            "proctorhub_archive_refused",
            "Recordings not archived because their source is not one 100ms would send, by reason",
            ["reason"],
            registry=r,
        )
        self._children: dict[tuple[int, str], MetricWrapperBase] = {}
        for reason in ("not_allowed", "private_address", "redirect", "too_large"):  # SourceRefused.REASONS
            self.archive_refused.labels(reason)  # at 0 before the first, for alert rules
        for role in ("candidate", "proctor", "admin"):
            self.connections.labels(role)  # present (at 0) before the first socket, for dashboards

    def _child(self, metric: MetricWrapperBase, label: str) -> MetricWrapperBase:
        key = (id(metric), label)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(label)
        return child

    def received(self, msg_type: str) -> None:
        self._child(self.messages_in, msg_type if msg_type in CLIENT_TYPES else "unknown").inc()  # type: ignore[attr-defined]

    def sent(self, msg_type: str) -> None:
        self.messages_out.counts[msg_type] += 1

    def closed(self, code: int) -> None:
        self._child(self.closes, str(code)).inc()  # type: ignore[attr-defined]

    def background_failed(self, name: str) -> None:
        self._child(self.background_failures, name).inc()  # type: ignore[attr-defined]

    def archive_source_refused(self, reason: str) -> None:
        self._child(self.archive_refused, reason).inc()  # type: ignore[attr-defined]

    def auth_failed(self, reason: str) -> None:
        self._child(self.auth_failures, reason).inc()  # type: ignore[attr-defined]

    def set_presence(self, counts: dict[tuple[str, str], int]) -> None:
        for role in ("candidate", "proctor", "admin"):
            for presence in ("online", "reconnecting", "offline", "finished"):
                self.presence.labels(role, presence).set(counts.get((role, presence), 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)
