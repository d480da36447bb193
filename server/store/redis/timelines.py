"""The recording monitor's state in Redis.

ph:sig:{e}:{c}      set of signal JSON        ph:alerts:{e}:{c}   hash alert id -> alert JSON
ph:alerted:{e}      set of candidate ids      ph:sess:{session}   set of [event, candidate]
ph:due              zset "event\\0candidate" -> when
"""

from __future__ import annotations

import orjson
import redis.asyncio as aioredis

from server.store.redis.backfill import requests_key
from server.store.redis.connection import KEEP_S, P, Write, esc, flat, kept_writes, num, script, tail
from server.store.redis.locks import lock_claim
from server.store.redis.presence import record_of
from server.store.timelines import CheckRead


def _hash(flat_reply: list[bytes]) -> dict[str, bytes]:
    """A script's HGETALL (a flat list of fields and values) as a dict."""
    return {k.decode(): v for k, v in zip(flat_reply[::2], flat_reply[1::2], strict=True)}


class RedisTimelines:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._take_due = script(client, "take_due")
        self._kept = script(client, "kept_writes")
        self._locked_read = script(client, "take_lock", "locked_read")

    async def add_signals(self, event_id: str, candidate_id: str, signals: list[bytes]) -> int:
        key = f"{P}sig:{tail(event_id, candidate_id)}"
        (added,) = await kept_writes(self._kept, KEEP_S, [(key, "SADD", signals)])
        return int(added)

    async def get_signals(self, event_id: str, candidate_id: str) -> list[bytes]:
        return list(await self._redis.smembers(f"{P}sig:{tail(event_id, candidate_id)}"))

    async def locked_read(
        self, event_id: str, candidate_id: str, *, lock: str, owner: str, now: float, ttl_s: float
    ) -> CheckRead | None:
        lock_keys, args = lock_claim(lock, owner, now=now, ttl_s=ttl_s)
        suffix = tail(event_id, candidate_id)
        keys = [
            *lock_keys,
            f"{P}sig:{suffix}",
            f"{P}alerts:{suffix}",
            f"{P}user:{suffix}",
            requests_key(event_id, candidate_id),
        ]
        reply = await self._locked_read(keys=keys, args=args)
        if not reply:
            return None
        fence, signals, alerts, user, backfill = reply
        return CheckRead(
            int(fence), list(signals), _hash(alerts), record_of(user) if user else None, _hash(backfill)
        )

    async def replace_signals(
        self, event_id: str, candidate_id: str, remove: list[bytes], add: list[bytes]
    ) -> None:
        key = f"{P}sig:{tail(event_id, candidate_id)}"
        writes: list[Write] = []
        if remove:
            writes.append((key, "SREM", remove))
        if add:
            writes.append((key, "SADD", add))
        await kept_writes(self._kept, KEEP_S, writes)

    async def put_alerts(self, event_id: str, candidate_id: str, alerts: dict[str, bytes]) -> None:
        if not alerts:
            return
        key = f"{P}alerts:{tail(event_id, candidate_id)}"
        index = f"{P}alerted:{esc(event_id)}"
        writes: list[Write] = [(key, "HSET", flat(alerts)), (index, "SADD", [candidate_id])]
        await kept_writes(self._kept, KEEP_S, writes)

    async def get_alerts(self, event_id: str, candidate_id: str) -> dict[str, bytes]:
        raw = await self._redis.hgetall(f"{P}alerts:{tail(event_id, candidate_id)}")
        return {k.decode(): v for k, v in raw.items()}

    async def alerted_candidates(self, event_id: str) -> list[str]:
        return sorted(m.decode() for m in await self._redis.smembers(f"{P}alerted:{esc(event_id)}"))

    async def add_session_member(self, session_id: str, event_id: str, candidate_id: str) -> None:
        key = f"{P}sess:{esc(session_id)}"
        await kept_writes(self._kept, KEEP_S, [(key, "SADD", [orjson.dumps([event_id, candidate_id])])])

    async def session_members(self, session_id: str) -> list[tuple[str, str]]:
        raw = await self._redis.smembers(f"{P}sess:{esc(session_id)}")
        return sorted(tuple(orjson.loads(m)) for m in raw)

    async def schedule_check(self, member: str, at: float) -> None:
        await self._redis.zadd(f"{P}due", {member: at}, lt=True)

    async def due_checks(self, now: float, *, limit: int = 256) -> list[str]:
        taken = await self._take_due(keys=[f"{P}due"], args=[num(now), limit])
        return [m.decode() for m in taken]
