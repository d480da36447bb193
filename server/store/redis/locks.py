"""Named locks with fencing tokens in Redis.

    ph:lock:{name}        hash owner, until (a TTL cleans it up)      ph:fence:{name}      fencing counter

The deadline is compared with the caller's `now`, not Redis's clock; PX only garbage-collects.
"""

from __future__ import annotations

import math
from typing import Any

import redis.asyncio as aioredis

from server.store.redis.connection import P, esc, num, script


def _keep_ms(ttl_s: float) -> int:
    """How long Redis keeps the lock key: its TTL and a minute (only garbage collection)."""
    return max(1, math.ceil(ttl_s * 1000) + 60_000)


def fence_key(name: str) -> str:
    return f"{P}fence:{esc(name)}"


def lock_claim(name: str, owner: str, *, now: float, ttl_s: float) -> tuple[list[str], list[Any]]:
    """The keys and arguments of `take_lock.lua` for `owner` taking `name` until `now + ttl_s`."""
    return [f"{P}lock:{esc(name)}", fence_key(name)], [owner, num(now), num(now + ttl_s), _keep_ms(ttl_s)]


class RedisLocks:
    def __init__(self, client: aioredis.Redis) -> None:
        self._acquire = script(client, "take_lock", "acquire_lock")
        self._renew = script(client, "renew_lock")
        self._owner = script(client, "lock_owner")
        self._release = script(client, "release_lock")

    async def acquire_lock(self, name: str, owner: str, *, now: float, ttl_s: float) -> int | None:
        keys, args = lock_claim(name, owner, now=now, ttl_s=ttl_s)
        fence = await self._acquire(keys=keys, args=args)
        return None if fence is None else int(fence)

    async def renew_lock(self, name: str, owner: str, *, now: float, ttl_s: float) -> bool:
        args = [owner, num(now), num(now + ttl_s), _keep_ms(ttl_s)]
        return bool(await self._renew(keys=[f"{P}lock:{esc(name)}"], args=args))

    async def lock_owner(self, name: str, *, now: float) -> str | None:
        owner = await self._owner(keys=[f"{P}lock:{esc(name)}"], args=[num(now)])
        return None if owner is None else owner.decode()

    async def release_lock(self, name: str, owner: str) -> None:
        await self._release(keys=[f"{P}lock:{esc(name)}"], args=[owner])
