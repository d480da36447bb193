"""Rooms, seats and allocation documents in Redis.

    ph:roomseq:{event}         counter            ph:rooms:{event}          list of room ids
    ph:room:{event}:{room}     RoomRecord JSON    ph:members:{event}:{room} set of candidate ids
    ph:roomevent               hash room -> event ph:alloc:{event}          allocation document JSON

A seat is written twice in one script: the room's member set and the user hash's `room_id`. The
document and the seats are saved only while the fence of the lock `alloc:{event}` (locks.py) is
still the one the writer was issued.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis

from server.store.records import RoomRecord
from server.store.redis.connection import P, esc, script
from server.store.redis.locks import fence_key


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
        raw = await self._redis.get(f"{P}alloc:{esc(event_id)}")
        return {} if raw is None else dict(orjson.loads(raw))

    async def save_allocation(
        self,
        event_id: str,
        *,
        fence: int,
        document: dict[str, Any],
        seat: list[tuple[str, str]],
        unseat: list[tuple[str, str]],
    ) -> bool:
        event = esc(event_id)
        keys = [fence_key(f"alloc:{event_id}"), f"{P}alloc:{event}"]
        args: list[Any] = [
            fence,
            orjson.dumps(document),
            f"{P}members:{event}:",
            f"{P}user:{event}:",
            len(seat),
        ]
        for candidate_id, room_id in seat:
            args += [candidate_id, esc(candidate_id), room_id, esc(room_id)]
        args.append(len(unseat))
        for candidate_id, room_id in unseat:
            args += [candidate_id, esc(room_id)]
        return bool(await self._save(keys=keys, args=args))
