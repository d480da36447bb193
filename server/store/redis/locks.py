"""Named locks with fencing tokens in Redis.

    ph:lock:{name}        hash owner, until (a TTL cleans it up)      ph:fence:{name}      fencing counter

The deadline is compared with the caller's `now`, not Redis's clock; PX only garbage-collects.
"""

from __future__ import annotations

import math

import redis.asyncio as aioredis

from server.store.redis.connection import P, esc, num, script


def fence_key(name: str) -> str:
    return f"{P}fence:{esc(name)}"


class RedisLocks:
    def __init__(self, client: aioredis.Redis) -> None:
        self._acquire = script(client, "acquire_lock")
        self._release = script(client, "release_lock")

    async def acquire_lock(self, name: str, owner: str, *, now: float, ttl_s: float) -> int | None:
        keys = [f"{P}lock:{esc(name)}", fence_key(name)]
        args = [owner, num(now), num(now + ttl_s), max(1, math.ceil(ttl_s * 1000) + 60_000)]
        fence = await self._acquire(keys=keys, args=args)
        return None if fence is None else int(fence)

    async def release_lock(self, name: str, owner: str) -> None:
        await self._release(keys=[f"{P}lock:{esc(name)}"], args=[owner])
