"""The inbox in-process, on both stores (a real redis-server): retries, parking, dedupe, and nodes that
stop holding entries."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from prometheus_client import CollectorRegistry

from server.metrics import WebhookMetrics
from server.recording.intake.envelope import Envelope
from server.recording.intake.inbox import Inbox
from server.store.base import Store
from tests.polling import eventually
from tests.webhook_support import encode, event

FAST = (0.02, 0.02, 0.02, 0.02)


class Recorder:
    """A handler that fails the first `fail[id]` calls of an event id, and records every call."""

    def __init__(self, fail: dict[str, int] | None = None, *, hang: set[str] | None = None) -> None:
        self.fail = fail or {}
        self.hang = hang or set()
        self.calls: Counter[str] = Counter()
        self.handled: list[str] = []

    async def __call__(self, envelope: Envelope) -> None:
        self.calls[envelope.id] += 1
        if envelope.id in self.hang:
            await asyncio.Event().wait()
        if self.calls[envelope.id] <= self.fail.get(envelope.id, 0):
            raise RuntimeError(f"attempt {self.calls[envelope.id]} of {envelope.id} fails")
        self.handled.append(envelope.id)


def sample(metrics: WebhookMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(f"proctorhub_webhooks_{name}", labels) or 0.0


def new_metrics() -> WebhookMetrics:
    return WebhookMetrics(CollectorRegistry())


def inbox(store: Store, handle: Recorder, metrics: WebhookMetrics, **options: Any) -> Inbox:
    settings: dict[str, Any] = {"consumer": "node-1", "block_s": 0.05, "retry_delays": FAST}
    settings.update(options)
    return Inbox(store.webhooks, store.dedupe, handle, metrics=metrics, **settings)


async def test_a_failing_handler_is_retried_until_it_succeeds(store: Store) -> None:
    bodies = [event(event_id=f"e{n}") for n in range(3)]
    for body in bodies:
        await store.webhooks.append(encode(body))
    handler, metrics = Recorder({"e1": 3}), new_metrics()
    box = inbox(store, handler, metrics)
    box.start()
    try:
        await eventually(lambda: len(handler.handled) == 3)
        await eventually(lambda: _zero(store))
    finally:
        await box.stop()
    assert sorted(handler.handled) == ["e0", "e1", "e2"]
    assert handler.calls == {"e0": 1, "e1": 4, "e2": 1}
    assert sample(metrics, "failed_total") == 3 and sample(metrics, "processed_total") == 3
    assert await store.webhooks.parked() == []


async def _zero(store: Store) -> bool:
    return await store.webhooks.backlog() == 0


async def test_a_poison_entry_is_parked_and_the_others_go_on(store: Store) -> None:
    poison = encode(event(event_id="poison"))
    poison_entry = await store.webhooks.append(poison)
    garbage_entry = await store.webhooks.append(b"not an event")
    await store.webhooks.append(encode(event(event_id="fine")))
    handler, metrics = Recorder({"poison": 99}), new_metrics()
    box = inbox(store, handler, metrics, retry_delays=(0.01, 0.01))
    box.start()
    try:
        await eventually(lambda: sample(metrics, "parked_total", error="RuntimeError") == 1)
        await eventually(lambda: _zero(store))
    finally:
        await box.stop()
    assert handler.handled == ["fine"] and handler.calls["poison"] == 3
    parked = {entry: (payload, error) for entry, payload, error in await store.webhooks.parked()}
    assert parked == {
        poison_entry: (poison, "RuntimeError: attempt 3 of poison fails"),
        garbage_entry: (b"not an event", "BadWebhook: body is not JSON"),
    }
    assert sample(metrics, "parked_total", error="BadWebhook") == 1


async def test_duplicates_are_handled_once_in_a_batch_and_later(store: Store) -> None:
    for event_id in ("a", "b", "a", "a", "b", "c"):
        await store.webhooks.append(encode(event(event_id=event_id)))
    handler, metrics = Recorder({"a": 1}), new_metrics()  # the first try of "a" fails: copies wait for it
    box = inbox(store, handler, metrics)
    box.start()
    try:
        await eventually(lambda: _zero(store))
        assert sorted(handler.handled) == ["a", "b", "c"] and sample(metrics, "duplicates_total") == 3
        await store.webhooks.append(encode(event(event_id="b")))  # after it was handled and acked
        await eventually(lambda: sample(metrics, "duplicates_total") == 4)
    finally:
        await box.stop()
    assert handler.calls == {"a": 2, "b": 1, "c": 1}


async def test_a_restarted_inbox_sees_what_another_one_handled(store: Store) -> None:
    await store.webhooks.append(encode(event(event_id="x")))
    first_handler, second_handler = Recorder(), Recorder()
    first = inbox(store, first_handler, new_metrics())
    first.start()
    await eventually(lambda: _zero(store))
    await first.stop()
    await store.webhooks.append(encode(event(event_id="x")))  # 100ms retried after a lost answer
    second = inbox(store, second_handler, new_metrics(), consumer="node-2")
    second.start()
    try:
        await eventually(lambda: _zero(store))
    finally:
        await second.stop()
    assert first_handler.handled == ["x"] and second_handler.calls == {}


class WatchedReads:
    """The store's webhook queue, noting reads under way and reads cancelled."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        self.reading = 0
        self.cancelled = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)

    async def claim(self, consumer: str, **options: Any) -> list[tuple[str, bytes]]:
        self.reading += 1
        try:
            return await self._queue.claim(consumer, **options)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.reading -= 1


async def test_a_stopping_inbox_lets_its_read_end_instead_of_cancelling_it(store: Store) -> None:
    """A blocked read cancelled on our side can still be answered with an entry appended that moment;
    the entry would then be this consumer's, waiting `min_idle_s` for another node to reclaim it."""
    queue = WatchedReads(store.webhooks)
    box = Inbox(queue, store.dedupe, Recorder(), consumer="node-1", metrics=new_metrics(), block_s=0.3)
    box.start()
    await eventually(lambda: queue.reading == 1, interval=0.001)
    await box.stop()
    assert queue.reading == 0 and queue.cancelled == 0


async def test_entries_held_by_a_stopped_node_are_reclaimed_by_another(store: Store) -> None:
    for n in range(4):
        await store.webhooks.append(encode(event(event_id=f"h{n}")))
    stuck = Recorder(hang={"h0", "h1", "h2", "h3"})
    dead = inbox(store, stuck, new_metrics(), min_idle_s=0.3)
    dead.start()
    await eventually(lambda: len(stuck.calls) == 4)
    await dead.stop()  # its handlers never finished: the entries stay pending on node-1
    assert await store.webhooks.backlog() == 4
    alive_handler = Recorder()
    alive = inbox(store, alive_handler, new_metrics(), consumer="node-2", min_idle_s=0.3)
    alive.start()
    try:
        await eventually(lambda: _zero(store))
    finally:
        await alive.stop()
    assert sorted(alive_handler.handled) == ["h0", "h1", "h2", "h3"]


async def test_many_events_concurrently_in_any_order(store: Store) -> None:
    ids = [f"m{n}" for n in range(1500)]
    for event_id in ids + ids[::3]:
        await store.webhooks.append(encode(event(event_id=event_id)))
    handler, metrics = Recorder({i: 1 for i in ids[::7]}), new_metrics()
    box = inbox(store, handler, metrics, workers=16, batch=128, max_held=256)
    box.start()
    try:
        await eventually(lambda: _zero(store), timeout=60)
    finally:
        await box.stop()
    assert sorted(handler.handled) == sorted(ids)
    assert sample(metrics, "duplicates_total") == len(ids[::3])


async def test_a_recording_failure_is_handled_while_every_worker_is_busy_with_the_bulk(store: Store) -> None:
    """The end of an exam: every worker holds a slow leave; a recording failure stored after them (and
    after more leaves) still gets a worker of its own lane at once."""
    leaves = [event("peer.leave.success", event_id=f"leave-{n}") for n in range(40)]
    failure = event("stream.recording.failure", event_id="failure")
    for body in [*leaves, failure, *(event("peer.leave.success", event_id=f"later-{n}") for n in range(5))]:
        await store.webhooks.append(encode(body))
    handler, metrics = Recorder(hang={b["id"] for b in leaves}), new_metrics()
    box = inbox(store, handler, metrics, workers=2, urgent_workers=1)
    box.start()
    try:
        await eventually(lambda: "failure" in handler.handled, what="the failure handled")
        assert sum(handler.calls[b["id"]] for b in leaves) == 2, "the bulk lane holds its two workers"
    finally:
        await box.stop()
