"""Allocation in Redis: the per-event writer lock with fencing, and the allocation document.

Keys (`event` escaped as in `store/redis.py`):

    ph:lock:{name}        owner, with a TTL          ph:fence:{name}      fencing counter
    ph:alloc:{event}      allocation document JSON   (seats live in ph:members / ph:user, see redis_rooms)
"""

from __future__ import annotations

import math
from typing import Any

import orjson
import redis.asyncio as aioredis

P = "ph:"

# KEYS: lock (a hash: owner, until), fence   ARGV: owner, now, until, ttl ms
# The deadline is compared with the caller's `now` (stores never read a clock); PX only cleans up.
_ACQUIRE = """
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[1] and tonumber(redis.call('HGET', KEYS[1], 'until')) > tonumber(ARGV[2]) then
  return false
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'until', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return redis.call('INCR', KEYS[2])
"""

# KEYS: lock   ARGV: owner
_RELEASE = """
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""

# KEYS: fence, doc
# ARGV: fence, doc, members prefix, user prefix,
#       #seat, (cand, cand escaped, room, room escaped)..., #unseat, (cand, room escaped)...
_SAVE = """
if tonumber(redis.call('GET', KEYS[1]) or '0') ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
local i = 6
for _ = 1, tonumber(ARGV[5]) do
  redis.call('SADD', ARGV[3] .. ARGV[i + 3], ARGV[i])
  local ukey = ARGV[4] .. ARGV[i + 1]
  if redis.call('EXISTS', ukey) == 1 then redis.call('HSET', ukey, 'room_id', ARGV[i + 2]) end
  i = i + 4
end
local unseat = tonumber(ARGV[i])
i = i + 1
for _ = 1, unseat do
  redis.call('SREM', ARGV[3] .. ARGV[i + 1], ARGV[i])
  i = i + 2
end
return 1
"""


def _esc(part: str) -> str:
    return part.replace("%", "%25").replace(":", "%3A")


class RedisAllocation:
    """Mixed into `RedisStore`; needs `self._redis`."""

    _redis: aioredis.Redis

    def _register_alloc_scripts(self) -> None:
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._release = self._redis.register_script(_RELEASE)
        self._save_alloc = self._redis.register_script(_SAVE)

    async def acquire_lock(self, name: str, owner: str, *, now: float, ttl_s: float) -> int | None:
        keys = [f"{P}lock:{_esc(name)}", f"{P}fence:{_esc(name)}"]
        args = [owner, repr(float(now)), repr(float(now + ttl_s)), max(1, math.ceil(ttl_s * 1000) + 60_000)]
        fence = await self._acquire(keys=keys, args=args)
        return None if fence is None else int(fence)

    async def release_lock(self, name: str, owner: str) -> None:
        await self._release(keys=[f"{P}lock:{_esc(name)}"], args=[owner])

    async def load_allocation(self, event_id: str) -> dict[str, Any]:
        raw = await self._redis.get(f"{P}alloc:{_esc(event_id)}")
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
        event = _esc(event_id)
        keys = [f"{P}fence:{_esc('alloc:' + event_id)}", f"{P}alloc:{event}"]
        args: list[Any] = [
            fence,
            orjson.dumps(document),
            f"{P}members:{event}:",
            f"{P}user:{event}:",
            len(seat),
        ]
        for candidate_id, room_id in seat:
            args += [candidate_id, _esc(candidate_id), room_id, _esc(room_id)]
        args.append(len(unseat))
        for candidate_id, room_id in unseat:
            args += [candidate_id, _esc(room_id)]
        return bool(await self._save_alloc(keys=keys, args=args))
