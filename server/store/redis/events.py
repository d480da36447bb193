"""Events and counters in Redis.

ph:events             set of event ids        ph:event:{id}        EventConfig JSON
ph:counters:{event}   hash name -> int
"""

from __future__ import annotations

import orjson
import redis.asyncio as aioredis

from server.store.records import EventConfig
from server.store.redis.connection import P, esc, script


class RedisEvents:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._create = script(client, "create_event")

    async def create_event(self, config: EventConfig) -> bool:
        keys = [f"{P}event:{config.event_id}", f"{P}events"]
        args = [orjson.dumps(config.to_dict()), config.event_id]
        return bool(await self._create(keys=keys, args=args))

    async def get_event(self, event_id: str) -> EventConfig | None:
        raw = await self._redis.get(f"{P}event:{event_id}")
        return None if raw is None else EventConfig.from_dict(orjson.loads(raw))

    async def list_events(self) -> list[EventConfig]:
        ids = await self._redis.smembers(f"{P}events")
        if not ids:
            return []
        raws = await self._redis.mget([f"{P}event:{i.decode()}" for i in ids])
        events = [EventConfig.from_dict(orjson.loads(raw)) for raw in raws if raw is not None]
        return sorted(events, key=lambda e: e.event_id)

    async def save_event(self, config: EventConfig) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(f"{P}event:{config.event_id}", orjson.dumps(config.to_dict()))
            pipe.sadd(f"{P}events", config.event_id)
            await pipe.execute()

    async def incr_counter(self, event_id: str, name: str, by: int = 1) -> int:
        return int(await self._redis.hincrby(f"{P}counters:{esc(event_id)}", name, by))

    async def get_counters(self, event_id: str) -> dict[str, int]:
        raw = await self._redis.hgetall(f"{P}counters:{esc(event_id)}")
        return {k.decode(): int(v) for k, v in raw.items()}
