"""Browser backfill's requests and segments in Redis.

ph:bfreq:{e}:{c}    hash request id -> request JSON (and `~release`)
ph:bfseg:{e}:{c}    hash segment id -> segment JSON
"""

from __future__ import annotations

import redis.asyncio as aioredis

from server.store.redis.connection import KEEP_S, P, flat, kept_writes, script, tail


def requests_key(event_id: str, candidate_id: str) -> str:
    """The candidate's requests hash (read by a timeline check's locked read too)."""
    return f"{P}bfreq:{tail(event_id, candidate_id)}"


class RedisBackfill:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._kept = script(client, "kept_writes")

    async def _put(self, key: str, mapping: dict[str, bytes]) -> None:
        await kept_writes(self._kept, KEEP_S, [(key, "HSET", flat(mapping))])

    async def _all(self, key: str) -> dict[str, bytes]:
        raw = await self._redis.hgetall(key)
        return {k.decode(): v for k, v in raw.items()}

    async def get_requests(self, event_id: str, candidate_id: str) -> dict[str, bytes]:
        return await self._all(requests_key(event_id, candidate_id))

    async def put_requests(self, event_id: str, candidate_id: str, requests: dict[str, bytes]) -> None:
        if requests:
            await self._put(requests_key(event_id, candidate_id), requests)

    async def get_segment(self, event_id: str, candidate_id: str, segment_id: str) -> bytes | None:
        value: bytes | None = await self._redis.hget(f"{P}bfseg:{tail(event_id, candidate_id)}", segment_id)
        return value

    async def list_segments(self, event_id: str, candidate_id: str) -> dict[str, bytes]:
        return await self._all(f"{P}bfseg:{tail(event_id, candidate_id)}")

    async def put_segment(self, event_id: str, candidate_id: str, segment_id: str, segment: bytes) -> None:
        await self._put(f"{P}bfseg:{tail(event_id, candidate_id)}", {segment_id: segment})
