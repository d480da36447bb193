"""Rooms, held tokens and counters in Redis: the part of `RedisStore` that allocation and tokens use.

Keys (`tail` is `{event}:{user}` escaped as in `store/redis.py`):

    ph:roomseq:{event}         counter            ph:rooms:{event}          list of room ids
    ph:room:{event}:{room}     RoomRecord JSON    ph:members:{event}:{room} set of candidate ids
    ph:token:{tail}:{room}     HeldToken JSON     ph:counters:{event}       hash name -> int
"""

from __future__ import annotations

import orjson
import redis.asyncio as aioredis

from server.store.base import HeldToken, RoomRecord

P = "ph:"

# KEYS: user, rooms   ARGV: room_size, user_id, members key prefix. Sticky, then first fit.
_PLACE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local current = redis.call('HGET', KEYS[1], 'room_id')
if current and current ~= '' then return current end
for _, room in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  local members = ARGV[3] .. room
  if redis.call('SCARD', members) < tonumber(ARGV[1]) then
    redis.call('SADD', members, ARGV[2])
    redis.call('HSET', KEYS[1], 'room_id', room)
    return room
  end
end
return false
"""

# KEYS: token   ARGV: new JSON, replaces jti ('' = none), ttl ms
_SWAP = """
local held = redis.call('GET', KEYS[1])
if held then
  local jti = cjson.decode(held).jti
  if jti ~= ARGV[2] then return held end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return ARGV[1]
"""

# KEYS: rooms, room, room index   ARGV: room_id, record JSON, event_id
_ADD_ROOM = """
if redis.call('SET', KEYS[2], ARGV[2], 'NX') then redis.call('RPUSH', KEYS[1], ARGV[1]) end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
return 1
"""

TOKEN_KEEP_MS = 24 * 3600 * 1000
"""Held tokens outlive their exp by a day at most: enough for any refresh to find them."""


def _esc(part: str) -> str:
    return part.replace("%", "%25").replace(":", "%3A")


class RedisRooms:
    """Mixed into `RedisStore`; needs `self._redis`."""

    _redis: aioredis.Redis

    def _register_room_scripts(self) -> None:
        self._place = self._redis.register_script(_PLACE)
        self._swap = self._redis.register_script(_SWAP)
        self._add_room = self._redis.register_script(_ADD_ROOM)

    async def next_room_seq(self, event_id: str) -> int:
        return int(await self._redis.incr(f"{P}roomseq:{_esc(event_id)}"))

    async def add_room(self, room: RoomRecord) -> None:
        event = _esc(room.event_id)
        keys = [f"{P}rooms:{event}", f"{P}room:{event}:{_esc(room.room_id)}", f"{P}roomevent"]
        await self._add_room(keys=keys, args=[room.room_id, orjson.dumps(room.to_dict()), room.event_id])

    async def list_rooms(self, event_id: str) -> list[RoomRecord]:
        event = _esc(event_id)
        ids = [i.decode() for i in await self._redis.lrange(f"{P}rooms:{event}", 0, -1)]
        if not ids:
            return []
        raws = await self._redis.mget([f"{P}room:{event}:{_esc(i)}" for i in ids])
        return [RoomRecord.from_dict(orjson.loads(raw)) for raw in raws if raw is not None]

    async def place_candidate(self, event_id: str, user_id: str, *, room_size: int) -> str | None:
        event = _esc(event_id)
        keys = [f"{P}user:{event}:{_esc(user_id)}", f"{P}rooms:{event}"]
        room = await self._place(keys=keys, args=[room_size, user_id, f"{P}members:{event}:"])
        return None if room is None else room.decode()

    async def room_members(self, event_id: str) -> dict[str, list[str]]:
        event = _esc(event_id)
        rooms = await self.list_rooms(event_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            for room in rooms:
                pipe.smembers(f"{P}members:{event}:{_esc(room.room_id)}")
            members = await pipe.execute()
        return {r.room_id: sorted(m.decode() for m in ids) for r, ids in zip(rooms, members, strict=True)}

    def _token_key(self, event_id: str, user_id: str, room_id: str) -> str:
        return f"{P}token:{_esc(event_id)}:{_esc(user_id)}:{_esc(room_id)}"

    async def get_token(self, event_id: str, user_id: str, room_id: str) -> HeldToken | None:
        raw = await self._redis.get(self._token_key(event_id, user_id, room_id))
        return None if raw is None else HeldToken.from_dict(orjson.loads(raw))

    async def swap_token(self, new: HeldToken, *, replaces: str | None) -> HeldToken:
        key = self._token_key(new.event_id, new.user_id, new.room_id)
        raw = await self._swap(keys=[key], args=[orjson.dumps(new.to_dict()), replaces or "", TOKEN_KEEP_MS])
        return HeldToken.from_dict(orjson.loads(raw))

    async def incr_counter(self, event_id: str, name: str, by: int = 1) -> int:
        return int(await self._redis.hincrby(f"{P}counters:{_esc(event_id)}", name, by))

    async def get_counters(self, event_id: str) -> dict[str, int]:
        raw = await self._redis.hgetall(f"{P}counters:{_esc(event_id)}")
        return {k.decode(): int(v) for k, v in raw.items()}
