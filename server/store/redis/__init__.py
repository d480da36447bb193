"""The redis store: many hub nodes share one Redis (standalone, not Cluster); one module per concept.

Like every store it never reads the wall clock; times are the callers' `now`. Connections open
lazily: `ping()` is the readiness check, and the first that succeeds loads every Lua script.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from server.store.redis.allocation import RedisAllocation
from server.store.redis.backfill import RedisBackfill
from server.store.redis.connection import connect, load_scripts
from server.store.redis.dedupe import RedisDedupe
from server.store.redis.events import RedisEvents
from server.store.redis.locks import RedisLocks
from server.store.redis.lti import RedisLti
from server.store.redis.outbox import RedisOutbox
from server.store.redis.presence import RedisPresence
from server.store.redis.pubsub import RedisPubSub
from server.store.redis.timelines import RedisTimelines
from server.store.redis.tokens import RedisTokens
from server.store.redis.webhooks import RedisWebhooks


class RedisStore:
    def __init__(
        self, url: str, *, batch: int = 256, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._redis = client = connect(url)
        self.events = RedisEvents(client)
        self.presence = RedisPresence(client, batch=batch)
        self.allocation = RedisAllocation(client)
        self.locks = RedisLocks(client)
        self.tokens = RedisTokens(client)
        self.dedupe = RedisDedupe(client)
        self.webhooks = RedisWebhooks(client, monotonic)
        self.timelines = RedisTimelines(client)
        self.backfill = RedisBackfill(client)
        self.lti = RedisLti(client)
        self.pubsub = RedisPubSub(client)
        self.outbox = RedisOutbox(client)
        self._scripts_loaded = False

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        await self.pubsub.close()
        await self._redis.aclose(close_connection_pool=True)

    async def ping(self) -> None:
        await self._redis.ping()
        if not self._scripts_loaded:  # before the node reports ready: its first users meet no NOSCRIPT
            await load_scripts(self._redis)
            self._scripts_loaded = True
