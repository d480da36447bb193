"""Presence in Redis: every transition is one Lua script, so it is atomic across nodes.

Two nodes can never both see the same transition, and the node that removes a grace or node entry
from its sorted set inside a script is the only one that returns the affected users.

    ph:user:{tail}        hash of UserRecord      ph:eusers:{event}    set of user ids
    ph:conns:{tail}       set of conn ids         ph:nconns:{node}     set of ConnRef JSON
    ph:nodes              zset node -> until      ph:grace             zset tail -> deadline
    ph:renewed            hash node -> when it last renewed its liveness (a dead node's users left then)
    ph:flags:{tail}       list of FlagRecord JSON
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict
from typing import Any, cast

import orjson
import redis.asyncio as aioredis

from server.store.records import ConnRef, FlagRecord, Presence, Transition, Tristate, UserRecord
from server.store.redis.connection import P, num, script, tail

log = logging.getLogger("proctorhub.store.redis")

GRACE = f"{P}grace"
NODES = f"{P}nodes"
RENEWED = f"{P}renewed"
COUNT_SLICE = 1000
"""Users per `count_users` script call: about 3 ms of Redis's time each, so a scrape of a 20,000-user
event never holds Redis for the 50 ms one call over them all would."""


def user_keys(user_tail: str) -> list[str]:
    return [f"{P}user:{user_tail}", f"{P}conns:{user_tail}"]


def _ref(ref: ConnRef) -> bytes:
    return orjson.dumps(asdict(ref))


def record_of(row: list[bytes] | dict[bytes, bytes]) -> UserRecord:
    """A user hash, as HGETALL's dict or as the flat list a script returns."""
    pairs = row.items() if isinstance(row, dict) else zip(row[::2], row[1::2], strict=True)
    raw = {k.decode(): v.decode() for k, v in pairs}
    return UserRecord(
        event_id=raw["event_id"],
        user_id=raw["user_id"],
        role=raw["role"],
        name=raw.get("name"),
        presence=cast(Presence, raw["presence"]),
        since=float(raw["since"]),
        connections=int(raw["connections"]),
        video=cast(Tristate, raw["video"]),
        flags=int(raw["flags"]),
        room_id=raw.get("room_id"),
        recording=cast(Tristate, raw.get("recording", "unknown")),
        open_alerts=int(raw.get("open_alerts", 0)),
    )


def _transition(reply: Any) -> Transition | None:
    if reply is None:
        return None
    return Transition(record_of(reply[1]), bool(reply[0]))


class RedisPresence:
    """`batch` bounds how many graces one script claims."""

    def __init__(self, client: aioredis.Redis, *, batch: int = 256) -> None:
        self._redis = client
        self._batch = batch
        self._connect = script(client, "connect")
        self._disconnect = script(client, "drop", "disconnect")
        self._finish = script(client, "finish")
        self._expire = script(client, "expire_graces")
        self._reap = script(client, "keys", "drop", "release", "reap")
        self._release = script(client, "keys", "drop", "release", "release_node")
        self._count = script(client, "keys", "count_users")
        self._set_status = script(client, "set_status")
        self._add_flag = script(client, "add_flag")

    async def connect(self, ref: ConnRef, *, role: str, name: str | None, now: float) -> Transition:
        user = tail(ref.event_id, ref.user_id)
        keys = [*user_keys(user), f"{P}nconns:{ref.node_id}", f"{P}eusers:{ref.event_id}", GRACE]
        named = ["0", ""] if name is None else ["1", name]
        args = [ref.conn_id, _ref(ref), ref.event_id, ref.user_id, role, *named, num(now), user]
        return cast(Transition, _transition(await self._connect(keys=keys, args=args)))

    async def disconnect(self, ref: ConnRef, *, now: float, grace_s: float) -> Transition | None:
        user = tail(ref.event_id, ref.user_id)
        keys = [*user_keys(user), f"{P}nconns:{ref.node_id}", GRACE]
        args = [ref.conn_id, _ref(ref), num(now), num(now + grace_s), user]
        return _transition(await self._disconnect(keys=keys, args=args))

    async def finish(self, event_id: str, user_id: str, *, now: float) -> Transition | None:
        user = tail(event_id, user_id)
        reply = await self._finish(keys=[f"{P}user:{user}", GRACE], args=[num(now), user])
        return _transition(reply)

    async def expire_graces(self, now: float) -> list[UserRecord]:
        expired: list[UserRecord] = []
        while True:
            claimed, records = await self._expire(keys=[GRACE], args=[num(now), self._batch])
            expired.extend(record_of(flat) for flat in records)
            if claimed < self._batch:
                return expired

    async def get_user(self, event_id: str, user_id: str) -> UserRecord | None:
        row = await self._redis.hgetall(f"{P}user:{tail(event_id, user_id)}")
        return record_of(row) if row else None

    async def list_users(self, event_id: str) -> list[UserRecord]:
        ids = sorted(i.decode() for i in await self._redis.smembers(f"{P}eusers:{event_id}"))
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id in ids:
                pipe.hgetall(f"{P}user:{tail(event_id, user_id)}")
            rows = await pipe.execute()
        return [record_of(row) for row in rows if row]

    async def count_users(self, event_id: str) -> Counter[tuple[str, str]]:
        ids = list(await self._redis.smembers(f"{P}eusers:{event_id}"))
        counts: Counter[tuple[str, str]] = Counter()
        for start in range(0, len(ids), COUNT_SLICE):
            flat = await self._count(args=[event_id, *ids[start : start + COUNT_SLICE]])
            for role, presence, n in zip(flat[::3], flat[1::3], flat[2::3], strict=True):
                counts[(role.decode(), presence.decode())] += int(n)
        return counts

    async def set_video(self, event_id: str, user_id: str, video: Tristate) -> Transition | None:
        return await self.set_status(event_id, user_id, {"video": video})

    async def set_status(self, event_id: str, user_id: str, changes: dict[str, Any]) -> Transition | None:
        args = [str(part) for pair in sorted(changes.items()) for part in pair]
        reply = await self._set_status(keys=[f"{P}user:{tail(event_id, user_id)}"], args=args)
        return _transition(reply)

    # nodes

    async def node_alive(self, node_id: str, *, now: float, until: float) -> bool:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(NODES, {node_id: until})
            pipe.hset(RENEWED, node_id, num(now))
            added, _ = await pipe.execute()
        return not added

    async def reap_dead_nodes(self, *, now: float, grace_s: float) -> list[UserRecord]:
        moved: list[UserRecord] = []
        while reply := await self._reap(keys=[NODES, GRACE, RENEWED], args=[num(now), num(now + grace_s)]):
            node, records = reply
            log.warning("node %s missed its liveness deadline; releasing its sockets", node.decode())
            moved.extend(record_of(flat) for flat in records)
        return moved

    async def release_node(self, node_id: str, *, now: float, grace_s: float) -> list[UserRecord]:
        reply = await self._release(
            keys=[NODES, GRACE, RENEWED], args=[node_id, num(now), num(now + grace_s)]
        )
        return [record_of(flat) for flat in reply]

    # flags

    async def add_flag(self, flag: FlagRecord) -> UserRecord | None:
        user = tail(flag.event_id, flag.candidate_id)
        keys = [f"{P}user:{user}", f"{P}flags:{user}"]
        flat = await self._add_flag(keys=keys, args=[orjson.dumps(flag.to_dict())])
        return None if flat is None else record_of(flat)

    async def list_flags(self, event_id: str, candidate_id: str) -> list[FlagRecord]:
        raws = await self._redis.lrange(f"{P}flags:{tail(event_id, candidate_id)}", 0, -1)
        return [FlagRecord.from_dict(orjson.loads(raw)) for raw in raws]
