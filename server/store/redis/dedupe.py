"""Dedupe keys in Redis: `ph:once:{key}` holds the deadline, compared with the caller's `now`."""

from __future__ import annotations

import math

import redis.asyncio as aioredis

from server.store.redis.connection import P, num, script


class RedisDedupe:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._once = script(client, "once")

    async def once(self, key: str, *, now: float, ttl_s: float) -> bool:
        px = max(1, math.ceil(ttl_s * 1000))
        return bool(await self._once(keys=[f"{P}once:{key}"], args=[num(now), num(now + ttl_s), px]))

    async def seen(self, keys: list[str], *, now: float) -> list[bool]:
        if not keys:
            return []
        untils = await self._redis.mget([f"{P}once:{key}" for key in keys])
        return [until is not None and float(until) > now for until in untils]

    async def mark_seen(self, keys: list[str], *, now: float, ttl_s: float) -> None:
        if not keys:
            return
        px = max(1, math.ceil(ttl_s * 1000))
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(f"{P}once:{key}", num(now + ttl_s), px=px)
            await pipe.execute()
