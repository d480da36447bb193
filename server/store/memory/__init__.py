"""The memory store: one process, nothing to install (the embedded default); one module per concept."""

from __future__ import annotations

import time
from collections.abc import Callable

from server.store.memory.allocation import MemoryAllocation
from server.store.memory.backfill import MemoryBackfill
from server.store.memory.dedupe import MemoryDedupe
from server.store.memory.events import MemoryEvents
from server.store.memory.locks import MemoryLocks
from server.store.memory.lti import MemoryLti
from server.store.memory.outbox import MemoryOutbox
from server.store.memory.presence import MemoryPresence
from server.store.memory.pubsub import MemoryPubSub
from server.store.memory.timelines import MemoryTimelines
from server.store.memory.tokens import MemoryTokens
from server.store.memory.webhooks import MemoryWebhooks


class MemoryStore:
    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.events = MemoryEvents()
        self.presence = MemoryPresence()
        self.locks = MemoryLocks()
        self.allocation = MemoryAllocation(self.presence, self.locks)
        self.tokens = MemoryTokens()
        self.dedupe = MemoryDedupe()
        self.webhooks = MemoryWebhooks(monotonic)
        self.backfill = MemoryBackfill()
        self.timelines = MemoryTimelines(self.presence, self.locks, self.backfill)
        self.lti = MemoryLti()
        self.pubsub = MemoryPubSub()
        self.outbox = MemoryOutbox()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self.pubsub.clear()

    async def ping(self) -> None:
        return None
