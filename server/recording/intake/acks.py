"""The inbox's writes, in batches: "event id handled" marks (dedupe) and acks of queue entries.

Marks are written before acks: an entry acked but not marked could be handled again when 100ms sends it
once more (harmless: handlers are idempotent); one marked but not acked is found done when reclaimed.
A failed write keeps its batch and is retried with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from server.background import Outage, cancel_all
from server.metrics import WebhookMetrics
from server.store.dedupe import DedupeStore
from server.store.webhooks import WebhookQueue

log = logging.getLogger("proctorhub.recording.inbox")

GATHER_S = 0.005
"""Wait this long before a round trip to the store, so that it carries a batch (also used by the inbox
after a claim that found only a few entries)."""
STOP_WAIT_S = 5.0


class AckWriter:
    def __init__(
        self,
        queue: WebhookQueue,
        dedupe: DedupeStore,
        metrics: WebhookMetrics,
        *,
        ttl_s: float,
        clock: Callable[[], float],
    ) -> None:
        self._queue = queue
        self._dedupe = dedupe
        self._metrics = metrics
        self._ttl_s = ttl_s
        self._clock = clock
        self._marks: list[str] = []
        self._acks: list[str] = []
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.outage = Outage(log, "webhook inbox: writing to the store")

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="webhook-inbox-acks")

    async def stop(self) -> None:
        """Stop the loop, then write what is left (once, for at most STOP_WAIT_S)."""
        task, self._task = self._task, None
        if task is not None and await cancel_all({task}, STOP_WAIT_S):
            log.warning("webhook inbox: its ack writer did not stop within %gs; left behind", STOP_WAIT_S)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._flush(), STOP_WAIT_S)

    def done(self, entry_ids: list[str], *, mark: str | None = None) -> None:
        """Ack `entry_ids`, after marking the dedupe key `mark` if given."""
        if mark is not None:
            self._marks.append(mark)
        self._acks.extend(entry_ids)
        self._wanted.set()

    async def _loop(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            await asyncio.sleep(GATHER_S)
            try:
                await self._flush()
            except Exception as exc:
                self._metrics.store_errors.inc()
                await self.outage.pause(exc)
                self._wanted.set()
                continue
            self.outage.recovered()

    async def _flush(self) -> None:
        marks, self._marks = self._marks, []
        acks, self._acks = self._acks, []
        try:
            if marks:
                await self._dedupe.mark_seen(marks, now=self._clock(), ttl_s=self._ttl_s)
            if acks:
                await self._queue.ack(acks)
        except BaseException:  # cancelled too: keep the batch for the final flush
            self._marks[:0] = marks
            self._acks[:0] = acks
            raise
