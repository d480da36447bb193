"""The outbox in Redis: one hash per delivery, a zset of what is due, one index per state.

    ph:outbox:d:{id}          hash: the Delivery's fields (None ones absent), and `claims` (a counter)
    ph:outbox:due             zset id -> when it may be claimed: `next_at`, or the end of a lease
    ph:outbox:s:{state}       zset id -> created_at: the listing and the counts

Delivery ids are generated tokens (letters, digits, `_`): they go into keys unescaped.

Claims, attempts and retries are Lua scripts (outbox_*.lua), so a claim, a settle and a retry of
one delivery never interleave. With `appendonly yes` pending deliveries survive a Redis restart.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from server.store.outbox import KEEP_DELIVERED, STATES, Attempt, Delivery, DeliveryState, RetryResult
from server.store.redis.connection import P, num, script

RECORD = f"{P}outbox:d:"
DUE = f"{P}outbox:due"
_FLOATS = {"created_at", "next_at", "window_from", "last_at", "delivered_at", "claimed_until"}
_INTS = {"attempts", "last_status"}
_FIELDS = set(Delivery.__slots__)


def _index(state: DeliveryState) -> str:
    return f"{P}outbox:s:{state}"


def _record(delivery_id: str) -> str:
    return RECORD + delivery_id


def _encode(delivery: Delivery) -> dict[str, str]:
    out = {}
    for name, value in delivery.to_dict().items():
        if value is None:
            continue
        out[name] = num(value) if name in _FLOATS else str(value)
    return out


def _decode(raw: dict[bytes, bytes] | list[bytes]) -> Delivery:
    if isinstance(raw, list):  # HGETALL inside a script: [field, value, field, value, ...]
        raw = dict(zip(raw[::2], raw[1::2], strict=True))
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name, text = key.decode(), value.decode()
        if name not in _FIELDS:
            continue
        values[name] = float(text) if name in _FLOATS else int(text) if name in _INTS else text
    return Delivery(**values)


class RedisOutbox:
    def __init__(self, client: aioredis.Redis, *, keep_delivered: int = KEEP_DELIVERED) -> None:
        self._redis = client
        self.keep_delivered = keep_delivered
        self._add = script(client, "outbox_add")
        self._claim = script(client, "outbox_claim")
        self._settle = script(client, "outbox_settle")
        self._retry = script(client, "outbox_retry")

    def _keys(self, delivery_id: str) -> list[str]:
        return [_record(delivery_id), DUE, *(_index(s) for s in STATES)]

    async def add(self, deliveries: list[Delivery]) -> int:
        if not deliveries:
            return 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for d in deliveries:
                fields = [x for pair in _encode(d).items() for x in pair]
                keys = [_record(d.delivery_id), DUE, _index(d.state)]
                await self._add(
                    keys=keys, args=[d.delivery_id, num(d.created_at), num(d.next_at), *fields], client=pipe
                )
            added = await pipe.execute()
        return sum(int(n) for n in added)

    async def claim(self, owner: str, *, now: float, lease_s: float, limit: int) -> list[Delivery]:
        if limit <= 0:
            return []
        args = [num(now), num(now + lease_s), limit, owner, RECORD]
        return [_decode(raw) for raw in await self._claim(keys=[DUE], args=args)]

    async def settle(self, delivery_id: str, claim: str, attempt: Attempt) -> bool:
        args = [
            claim,
            attempt.outcome,
            num(attempt.at),
            "" if attempt.status is None else str(attempt.status),
            attempt.answer,
            num(attempt.next_at or 0.0),
            self.keep_delivered,
            RECORD,
        ]
        return bool(await self._settle(keys=self._keys(delivery_id), args=args))

    async def retry(self, delivery_id: str, *, now: float) -> RetryResult:
        result = await self._retry(keys=self._keys(delivery_id), args=[num(now)])
        answer = result.decode() if isinstance(result, bytes) else str(result)
        if answer not in ("queued", "sending", "unknown"):
            raise RuntimeError(f"outbox_retry.lua answered {answer!r}")
        return answer  # type: ignore[return-value]

    async def get(self, delivery_id: str) -> Delivery | None:
        raw = await self._redis.hgetall(_record(delivery_id))
        return _decode(raw) if raw else None

    async def list(self, *, state: DeliveryState | None = None, limit: int = 100) -> list[Delivery]:
        if limit <= 0:
            return []
        states = STATES if state is None else (state,)
        async with self._redis.pipeline(transaction=False) as pipe:
            for s in states:
                pipe.zrevrange(_index(s), 0, limit - 1, withscores=True)
            ranked = [row for rows in await pipe.execute() for row in rows]
        newest = sorted(ranked, key=lambda row: (row[1], row[0]), reverse=True)[:limit]
        async with self._redis.pipeline(transaction=False) as pipe:
            for member, _ in newest:
                pipe.hgetall(RECORD + member.decode())
            raws = await pipe.execute()
        return [_decode(raw) for raw in raws if raw]

    async def counts(self) -> dict[DeliveryState, int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for s in STATES:
                pipe.zcard(_index(s))
            found = await pipe.execute()
        return {s: int(n) for s, n in zip(STATES, found, strict=True)}
