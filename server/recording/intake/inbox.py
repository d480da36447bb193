"""The inbox: every stored webhook is handled until it succeeds, and each event id at most once after that.

    store (durable queue) ──claim──▶ dedupe by event id ──▶ handle(envelope) ──▶ mark done, ack
                                                               │ raised
                                                               ▼
                                       retry after 0.5, 1, 2, ... s; after the last, park (dead letters)

Entries are claimed in batches and handled concurrently (`workers` at a time; failures a proctor must hear
of at once, `is_urgent`, in a lane of their own of `urgent_workers`, and first in their batch, so the bulk
of an exam's end never holds them up): the handler does not
depend on the order of arrival, so nothing is serialized but two entries of the same event id (the
second waits for the first and is acked as a duplicate when it succeeds). An event id is marked done in
the store only after its handler succeeded, so a failed attempt is retried and a duplicate arriving later
is a no-op. Marks and acks are written in batches. Entries held by a node that died (or stopped) are
reclaimed by any node after `min_idle_s`. A poison entry is retried a bounded number of times, then
parked in the store's dead-letter list: counted, logged, never silently dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from server.background import Outage, cancel_all
from server.metrics import WebhookMetrics
from server.recording.intake.acks import GATHER_S, STOP_WAIT_S, AckWriter
from server.recording.intake.envelope import BadWebhook, Envelope, is_urgent, parse_envelope
from server.store.dedupe import DedupeStore
from server.store.webhooks import WebhookQueue

log = logging.getLogger("proctorhub.recording.inbox")

Handler = Callable[[Envelope], Awaitable[None]]

RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
"""Between attempts of one entry: 8 attempts over about a minute, then it is parked."""
DEDUPE_TTL_S = 7 * 24 * 3600.0
RECENT_IDS = 16_384
BACKLOG_EVERY_S = 0.5
READ_END_S = 1.0
"""How long past `block_s` a stopping inbox waits for its read under way before cancelling it."""


class RetryLater(Exception):
    """A handler's known, temporary failure (e.g. another service down): retried, logged without a
    traceback. Any other exception is retried the same way and logged with its traceback."""


def dedupe_key(event_id: str) -> str:
    return f"webhook:{event_id}"


@dataclass(eq=False)
class _Held:
    """One event id this node is working on: the entry it came in, and later entries with the same id."""

    entry_id: str
    envelope: Envelope
    attempts: int = 0
    followers: list[str] = field(default_factory=list)


class Inbox:
    def __init__(
        self,
        queue: WebhookQueue,
        dedupe: DedupeStore,
        handle: Handler,
        *,
        consumer: str,
        metrics: WebhookMetrics,
        workers: int = 64,
        urgent_workers: int = 8,
        batch: int = 256,
        max_held: int = 2048,
        block_s: float = 1.0,
        min_idle_s: float = 30.0,
        handle_timeout_s: float = 60.0,
        retry_delays: tuple[float, ...] = RETRY_DELAYS_S,
        dedupe_ttl_s: float = DEDUPE_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if workers < 1 or urgent_workers < 1 or batch < 1 or max_held < batch:
            raise ValueError(
                "Inbox needs workers >= 1, urgent_workers >= 1, batch >= 1 and max_held >= batch"
            )
        self._queue = queue
        self._dedupe = dedupe
        self._handle = handle
        self._consumer = consumer
        self._metrics = metrics
        self._batch = batch
        self._max_held = max_held
        self._block_s = block_s
        self._min_idle_s = min_idle_s
        self._timeout_s = handle_timeout_s
        self._delays = retry_delays
        self._clock = clock
        self._slots = asyncio.Semaphore(workers)
        self._urgent_slots = asyncio.Semaphore(urgent_workers)
        self._held: dict[str, _Held] = {}  # entry id -> what it belongs to
        self._leaders: dict[str, _Held] = {}  # event id -> the entry being handled or waiting to retry
        self._recent: OrderedDict[str, None] = OrderedDict()  # event ids handled lately, on this node
        self._writes = AckWriter(queue, dedupe, metrics, ttl_s=dedupe_ttl_s, clock=clock)
        self._room = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False
        self._backlog_at = 0.0
        self._claims = Outage(log, "webhook inbox: reading the store")

    # lifecycle

    def start(self) -> None:
        if self._loops:
            return
        self._stopping = False
        self._writes.start()
        self._loops = [asyncio.get_running_loop().create_task(self._claim_loop(), name="webhook-inbox-claim")]

    async def stop(self) -> None:
        """Stop claiming, give running handlers a moment, write what is done; the rest stays pending in
        the store for any node to reclaim."""
        if not self._loops:
            return
        (claim,) = self._loops
        self._loops = []
        await self._stop_claiming(claim)
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._tasks:
            _done, running = await asyncio.wait(set(self._tasks), timeout=STOP_WAIT_S)
            for task in running:
                await _cancel(task)
        await self._writes.stop()

    async def _stop_claiming(self, claim: asyncio.Task[None]) -> None:
        """Let a read under way end (within `block_s`), then stop. A blocked read cancelled on this
        side can still be answered by Redis with an entry appended that moment: the entry is then
        this node's in the group, and waits `min_idle_s` for another node to reclaim it."""
        self._stopping = True
        self._room.set()
        try:
            await asyncio.wait_for(asyncio.shield(claim), self._block_s + READ_END_S)
        except TimeoutError:
            await _cancel(claim)

    @property
    def held(self) -> int:
        """Entries this node holds (being handled, waiting to retry, or waiting for their leader)."""
        return len(self._held)

    # claiming

    async def _claim_loop(self) -> None:
        while not self._stopping:
            if len(self._held) >= self._max_held:
                self._room.clear()
                await self._room.wait()
                continue
            count = min(self._batch, self._max_held - len(self._held))
            try:
                entries = await self._queue.claim(
                    self._consumer, count=count, block_s=self._block_s, min_idle_s=self._min_idle_s
                )
                if entries:
                    await self._admit(entries)
                await self._report_backlog()
                if 0 < len(entries) < count:
                    await asyncio.sleep(GATHER_S)
            except Exception as exc:
                self._metrics.store_errors.inc()
                if self._stopping:
                    return
                await self._claims.pause(exc)
                continue
            self._claims.recovered()

    async def _admit(self, entries: list[tuple[str, bytes]]) -> None:
        fresh: list[tuple[str, Envelope]] = []
        for entry_id, payload in entries:
            if entry_id in self._held:  # reclaimed from ourselves while it waits to be retried
                continue
            try:
                fresh.append((entry_id, parse_envelope(payload)))
            except BadWebhook as exc:  # stored by something else than the intake, or damaged
                await self._park(entry_id, payload, f"BadWebhook: {exc.reason}", "BadWebhook")
        fresh.sort(key=lambda entry: not is_urgent(entry[1].type))  # stable: urgent first, in order
        ask = list({e.id for _, e in fresh if e.id not in self._recent and e.id not in self._leaders})
        done: set[str] = set()
        if ask:
            try:
                flags = await self._dedupe.seen([dedupe_key(i) for i in ask], now=self._clock())
            except Exception as exc:  # handling an event twice is safe, leaving it for later is slow
                self._metrics.store_errors.inc()
                self._writes.outage.failed(exc)
                flags = [False] * len(ask)
            done = {event_id for event_id, flag in zip(ask, flags, strict=True) if flag}
        for entry_id, envelope in fresh:
            leader = self._leaders.get(envelope.id)
            if envelope.id in self._recent or envelope.id in done:
                self._metrics.duplicates.inc()
                self._writes.done([entry_id])
            elif leader is not None:
                leader.followers.append(entry_id)
                self._held[entry_id] = leader
            else:
                held = _Held(entry_id, envelope)
                self._leaders[envelope.id] = self._held[entry_id] = held
                self._spawn(held)

    async def _report_backlog(self) -> None:
        now = time.monotonic()
        if now - self._backlog_at >= BACKLOG_EVERY_S:
            self._backlog_at = now
            self._metrics.backlog.set(await self._queue.backlog())

    # handling

    def _spawn(self, held: _Held) -> None:
        task = asyncio.get_running_loop().create_task(self._run(held), name="webhook-inbox-handle")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, held: _Held) -> None:
        try:
            async with self._urgent_slots if is_urgent(held.envelope.type) else self._slots:
                async with asyncio.timeout(self._timeout_s):
                    await self._handle(held.envelope)
        except Exception as exc:
            await self._failed(held, exc)
            return
        self._metrics.processed.inc()
        self._remember(held.envelope.id)
        self._release(held, handled=True)

    async def _failed(self, held: _Held, exc: Exception) -> None:
        held.attempts += 1
        self._metrics.failed.inc()
        envelope = held.envelope
        if held.attempts == 1:
            trace = None if isinstance(exc, RetryLater) else exc
            log.warning(
                "webhook %s %s failed; retrying (%r)", envelope.type, envelope.id, exc, exc_info=trace
            )
        if held.attempts <= len(self._delays):
            self._later(self._delays[held.attempts - 1], held)
            return
        error = f"{type(exc).__name__}: {exc}"
        if await self._park(held.entry_id, envelope.raw, error, type(exc).__name__):
            log.error(
                "webhook %s %s parked after %d attempts: %s", envelope.type, envelope.id, held.attempts, error
            )
            self._release(held, handled=False)
        else:
            self._later(self._delays[-1] if self._delays else 1.0, held)

    async def _park(self, entry_id: str, payload: bytes, error: str, kind: str) -> bool:
        try:
            await self._queue.park(entry_id, payload, error=error)
        except Exception as exc:
            self._metrics.store_errors.inc()
            self._writes.outage.failed(exc)
            return False
        self._metrics.parked.labels(kind).inc()
        return True

    def _later(self, delay: float, held: _Held) -> None:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.discard(timer)
            self._spawn(held)

        timer = loop.call_later(delay, fire)
        self._timers.add(timer)

    def _release(self, held: _Held, *, handled: bool) -> None:
        """`held` is finished: handled (marked and acked) or parked (out of the queue already); its
        followers are duplicates either way."""
        self._metrics.duplicates.inc(len(held.followers))
        mark = dedupe_key(held.envelope.id) if handled else None
        self._writes.done(([held.entry_id] if handled else []) + held.followers, mark=mark)
        for follower in held.followers:
            self._held.pop(follower, None)
        self._held.pop(held.entry_id, None)
        self._leaders.pop(held.envelope.id, None)
        if len(self._held) < self._max_held:
            self._room.set()

    def _remember(self, event_id: str) -> None:
        self._recent[event_id] = None
        if len(self._recent) > RECENT_IDS:
            self._recent.popitem(last=False)


async def _cancel(task: asyncio.Task[None]) -> None:
    """Stop one of the inbox's tasks; one that will not end (seen: the claim loop in a Redis read that
    kept waiting after its cancellation) is left behind with a warning, never waited on for ever."""
    if await cancel_all({task}, STOP_WAIT_S):
        log.warning("webhook inbox: %s did not stop within %gs; left behind", task.get_name(), STOP_WAIT_S)
