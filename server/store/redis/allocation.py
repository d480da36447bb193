"""Rooms, seats and allocation documents in Redis.

    ph:roomseq:{event}         counter            ph:rooms:{event}          list of room ids
    ph:room:{event}:{room}     RoomRecord JSON    ph:members:{event}:{room} set of candidate ids
    ph:roomevent               hash room -> event ph:roommeta:{event}       hash room -> meta JSON
    ph:shortage:{event}        shortage report JSON (absent: none)

A seat is written twice in one script: the room's member set and the user hash's `room_id`. Metas,
the shortage and seats are saved only while the fence of the lease `alloc:{event}` (locks.py) is
still the one the writer was issued.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis

from server.store.allocation import KEEP, Shortage
from server.store.records import RoomRecord, UserRecord
from server.store.redis.connection import P, esc, script
from server.store.redis.locks import fence_key
from server.store.redis.presence import record_of


class RedisAllocation:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._add_room = script(client, "add_room")
        self._save = script(client, "save_allocation")

    async def next_room_seq(self, event_id: str) -> int:
        return int(await self._redis.incr(f"{P}roomseq:{esc(event_id)}"))

    async def add_room(self, room: RoomRecord) -> None:
        event = esc(room.event_id)
        keys = [f"{P}rooms:{event}", f"{P}room:{event}:{esc(room.room_id)}", f"{P}roomevent"]
        await self._add_room(keys=keys, args=[room.room_id, orjson.dumps(room.to_dict()), room.event_id])

    async def list_rooms(self, event_id: str) -> list[RoomRecord]:
        event = esc(event_id)
        ids = [i.decode() for i in await self._redis.lrange(f"{P}rooms:{event}", 0, -1)]
        if not ids:
            return []
        raws = await self._redis.mget([f"{P}room:{event}:{esc(i)}" for i in ids])
        return [RoomRecord.from_dict(orjson.loads(raw)) for raw in raws if raw is not None]

    async def get_room(self, event_id: str, room_id: str) -> RoomRecord | None:
        raw = await self._redis.get(f"{P}room:{esc(event_id)}:{esc(room_id)}")
        return None if raw is None else RoomRecord.from_dict(orjson.loads(raw))

    async def room_event(self, room_id: str) -> str | None:
        raw = await self._redis.hget(f"{P}roomevent", room_id)
        return None if raw is None else raw.decode()

    async def room_members(self, event_id: str) -> dict[str, list[str]]:
        event = esc(event_id)
        rooms = await self.list_rooms(event_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            for room in rooms:
                pipe.smembers(f"{P}members:{event}:{esc(room.room_id)}")
            members = await pipe.execute()
        return {r.room_id: sorted(m.decode() for m in ids) for r, ids in zip(rooms, members, strict=True)}

    async def load_allocation(self, event_id: str) -> dict[str, Any]:
        event = esc(event_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(f"{P}roommeta:{event}")
            pipe.get(f"{P}shortage:{event}")
            metas, shortage = await pipe.execute()
        if not metas and shortage is None:
            return {}
        rooms = {k.decode(): orjson.loads(v) for k, v in metas.items()}
        return {"rooms": rooms, "shortage": None if shortage is None else orjson.loads(shortage)}

    async def room_proctors(self, event_id: str, room_id: str) -> list[str]:
        raw = await self._redis.hget(f"{P}roommeta:{esc(event_id)}", room_id)
        return [] if raw is None else list(orjson.loads(raw).get("proctors", ()))

    async def save_allocation(
        self,
        event_id: str,
        *,
        fence: int,
        rooms: dict[str, dict[str, Any]],
        shortage: Shortage,
        seat: list[tuple[str, str]],
        unseat: list[tuple[str, str]],
    ) -> list[UserRecord] | None:
        event = esc(event_id)
        keys = [fence_key(f"alloc:{event_id}"), f"{P}roommeta:{event}", f"{P}shortage:{event}"]
        mode = "keep" if shortage == KEEP else ("del" if shortage is None else "set")
        args: list[Any] = [
            fence,
            f"{P}members:{event}:",
            f"{P}user:{event}:",
            mode,
            b"" if mode != "set" else orjson.dumps(shortage),
            len(rooms),
        ]
        for room_id, meta in rooms.items():
            args += [room_id, orjson.dumps(meta)]
        args.append(len(seat))
        for candidate_id, room_id in seat:
            args += [candidate_id, esc(candidate_id), room_id, esc(room_id)]
        args.append(len(unseat))
        for candidate_id, room_id in unseat:
            args += [candidate_id, esc(room_id)]
        reply = await self._save(keys=keys, args=args)
        return None if reply is None else [record_of(flat) for flat in reply]
