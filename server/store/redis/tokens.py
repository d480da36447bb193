"""Held 100ms tokens in Redis: `ph:token:{event}:{user}:{room}` holds a HeldToken's JSON."""

from __future__ import annotations

import orjson
import redis.asyncio as aioredis

from server.store.records import HeldToken
from server.store.redis.connection import P, esc, script

TOKEN_KEEP_MS = 24 * 3600 * 1000
"""Held tokens outlive their exp by a day at most: enough for any refresh to find them."""


def _key(event_id: str, user_id: str, room_id: str) -> str:
    return f"{P}token:{esc(event_id)}:{esc(user_id)}:{esc(room_id)}"


class RedisTokens:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._swap = script(client, "swap_token")

    async def get_token(self, event_id: str, user_id: str, room_id: str) -> HeldToken | None:
        raw = await self._redis.get(_key(event_id, user_id, room_id))
        return None if raw is None else HeldToken.from_dict(orjson.loads(raw))

    async def swap_token(self, new: HeldToken, *, replaces: str | None) -> HeldToken:
        key = _key(new.event_id, new.user_id, new.room_id)
        raw = await self._swap(keys=[key], args=[orjson.dumps(new.to_dict()), replaces or "", TOKEN_KEEP_MS])
        return HeldToken.from_dict(orjson.loads(raw))
