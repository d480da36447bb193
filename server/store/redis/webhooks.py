"""The webhook inbox in Redis: a stream read through one consumer group, so every node takes a share.

Keys:

    ph:webhooks          stream of entries {p: payload}; group `inbox`; acked entries are deleted
    ph:webhooks:dead     list of msgpack [entry id, payload, error]: entries that kept failing
    ph:roomnames         hash 100ms room id -> room name

`claim` reclaims entries idle past `min_idle_s` (XAUTOCLAIM: their consumer died, or gave up on
them for a while) before it reads new ones (XREADGROUP >). A consumer's first claims after a start read
back what that consumer name still holds (XREADGROUP 0): a node restarted under the same HUB_NODE_ID
resumes its entries at once. The group is created, from the stream's start,
the first time a read finds it missing (first use, or a Redis that lost it), so no entry is skipped.
With `appendonly yes` the stream and the group survive a Redis restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgpack
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from server.store.redis.connection import P

STREAM = f"{P}webhooks"
DEAD = f"{P}webhooks:dead"
ROOM_NAMES = f"{P}roomnames"
GROUP = "inbox"
FIELD = b"p"
SCAN_EVERY_S = 1.0
"""Idle entries are looked for at most this often (more often when `min_idle_s` is shorter)."""


def _entries(raw: list[Any]) -> list[tuple[str, bytes]]:
    """(id, payload) of stream entries; entries deleted meanwhile come back without fields: skipped."""
    out: list[tuple[str, bytes]] = []
    for entry_id, fields in raw:
        if fields and FIELD in fields:
            out.append((entry_id.decode(), fields[FIELD]))
    return out


class RedisWebhooks:
    def __init__(self, client: aioredis.Redis, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._redis = client
        self._monotonic = monotonic
        self._wh_resumed: set[str] = set()  # consumers that have read back their own pending entries
        self._wh_resume: dict[str, str] = {}  # how far they got
        self._wh_cursor = "0-0"
        self._wh_scanned_at = -SCAN_EVERY_S

    async def append(self, payload: bytes) -> str:
        try:
            entry_id = await self._redis.xadd(STREAM, {FIELD: payload})
        except RedisConnectionError:  # e.g. a pooled connection that a restarted Redis closed: once more
            entry_id = await self._redis.xadd(STREAM, {FIELD: payload})  # (a double is a duplicate)
        return str(entry_id.decode())

    async def claim(
        self, consumer: str, *, count: int, block_s: float, min_idle_s: float
    ) -> list[tuple[str, bytes]]:
        try:
            return await self._claim(consumer, count, block_s, min_idle_s)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
        try:
            await self._redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):  # another node created it first
                raise
        return await self._claim(consumer, count, block_s, min_idle_s)

    async def _claim(
        self, consumer: str, count: int, block_s: float, min_idle_s: float
    ) -> list[tuple[str, bytes]]:
        if consumer not in self._wh_resumed:  # first reads since start: what this name held before
            start = self._wh_resume.get(consumer, "0")
            reply = await self._redis.xreadgroup(GROUP, consumer, {STREAM: start}, count=count)
            raw = [entry for _stream, entries in reply or () for entry in entries]
            if len(raw) < count:
                self._wh_resumed.add(consumer)
            else:
                self._wh_resume[consumer] = raw[-1][0].decode()
            own = _entries(raw)
            if own:
                return own
        claimed: list[tuple[str, bytes]] = []
        now = self._monotonic()
        if self._wh_cursor != "0-0" or now - self._wh_scanned_at >= min(SCAN_EVERY_S, min_idle_s / 4):
            idle_ms = max(0, int(min_idle_s * 1000))
            cursor, raw, *_deleted = await self._redis.xautoclaim(
                STREAM, GROUP, consumer, idle_ms, start_id=self._wh_cursor, count=count
            )
            self._wh_cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
            if self._wh_cursor == "0-0":
                self._wh_scanned_at = now
            claimed = _entries(raw)
        if len(claimed) >= count:
            return claimed
        block = None if claimed or block_s <= 0 else max(1, int(block_s * 1000))
        reply = await self._redis.xreadgroup(
            GROUP, consumer, {STREAM: ">"}, count=count - len(claimed), block=block
        )
        for _stream, raw in reply or ():
            claimed.extend(_entries(raw))
        return claimed

    async def ack(self, ids: list[str]) -> None:
        if not ids:
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(STREAM, GROUP, *ids)
            pipe.xdel(STREAM, *ids)
            await pipe.execute()

    async def backlog(self) -> int:
        return int(await self._redis.xlen(STREAM))

    async def park(self, entry_id: str, payload: bytes, *, error: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(DEAD, msgpack.packb([entry_id, bytes(payload), error]))
            pipe.xack(STREAM, GROUP, entry_id)
            pipe.xdel(STREAM, entry_id)
            await pipe.execute()

    async def parked(self) -> list[tuple[str, bytes, str]]:
        rows = [msgpack.unpackb(raw) for raw in await self._redis.lrange(DEAD, 0, -1)]
        return [(str(entry_id), bytes(payload), str(error)) for entry_id, payload, error in rows]

    async def remember_room_name(self, room_id: str, name: str) -> None:
        await self._redis.hset(ROOM_NAMES, room_id, name)

    async def room_name_of(self, room_id: str) -> str | None:
        name = await self._redis.hget(ROOM_NAMES, room_id)
        return None if name is None else name.decode()
