"""State and pub/sub behind one interface made of concepts (base.py): `memory` (one process) and `redis`."""

from __future__ import annotations

from server.config import Settings
from server.store.base import Store


def create_store(settings: Settings) -> Store:
    if settings.redis_url:
        from server.store.redis import RedisStore

        return RedisStore(settings.redis_url)
    from server.store.memory import MemoryStore

    return MemoryStore()
