"""The redis store: many hub nodes share one Redis (standalone, not Cluster).

Every presence transition is one Lua script, so it is atomic across nodes: two
nodes can never both see the same transition, and the node that removes a
grace or node entry from its sorted set inside the script is the only one that
returns the affected users. Like every store it never reads a clock; times are
the callers' `now`, passed as `repr(float)` strings so they round-trip exactly.

Keys (ids are escaped, `%` -> `%25` and `:` -> `%3A`, so `a:b`/`c` and `a`/`b:c`
never share a key; `tail` below is `{event}:{user}` escaped):

    ph:events             set of event ids        ph:event:{id}        EventConfig JSON
    ph:user:{tail}        hash of UserRecord      ph:eusers:{event}    set of user ids
    ph:conns:{tail}       set of conn ids         ph:nconns:{node}     set of ConnRef JSON
    ph:nodes              zset node -> until      ph:grace             zset tail -> deadline
    ph:flags:{tail}       list of FlagRecord JSON ph:once:{key}        deadline of a dedupe key
    ph:topic:{topic}      pub/sub channel
    (rooms and tokens: see redis_rooms.py; allocation: redis_alloc.py; webhooks: redis_webhooks.py)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import asdict
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from server.store.base import (
    ConnRef,
    EventConfig,
    FlagRecord,
    MessageHandler,
    Presence,
    Transition,
    Tristate,
    UserRecord,
)
from server.store.redis_alloc import RedisAllocation
from server.store.redis_rooms import RedisRooms
from server.store.redis_timelines import RedisTimelines
from server.store.redis_webhooks import RedisWebhooks

log = logging.getLogger("proctorhub.store.redis")

P = "ph:"
TOPIC = f"{P}topic:"
GRACE = f"{P}grace"
NODES = f"{P}nodes"
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 5.0
READ_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 64
POOL_TIMEOUT_S = 10.0

# Shared by `disconnect` and `reap`: drop one socket of a user, the last one
# gone makes an online user `reconnecting` with a grace deadline.
_DROP = """
local function drop(ukey, ckey, grace, conn_id, now, deadline, tail)
  redis.call('SREM', ckey, conn_id)
  if redis.call('EXISTS', ukey) == 0 then return false end
  local left = redis.call('SCARD', ckey)
  if left == 0 and redis.call('HGET', ukey, 'presence') == 'online' then
    redis.call('HSET', ukey, 'presence', 'reconnecting', 'since', now, 'connections', 0)
    redis.call('ZADD', grace, deadline, tail)
    return {1, redis.call('HGETALL', ukey)}
  end
  redis.call('HSET', ukey, 'connections', left)
  return {0, redis.call('HGETALL', ukey)}
end
"""

_CREATE_EVENT = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 0 end
redis.call('SADD', KEYS[2], ARGV[2])
return 1
"""

# KEYS: user, conns, nconns, eusers, grace
# ARGV: conn_id, ref, event_id, user_id, role, has_name, name, now, tail
_CONNECT = """
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[4])
local presence = redis.call('HGET', KEYS[1], 'presence')
if not presence then
  presence = 'offline'
  redis.call('HSET', KEYS[1], 'event_id', ARGV[3], 'user_id', ARGV[4], 'presence', presence,
             'since', ARGV[8], 'video', 'unknown', 'flags', 0)
end
redis.call('HSET', KEYS[1], 'role', ARGV[5], 'connections', redis.call('SCARD', KEYS[2]))
if ARGV[6] == '1' then redis.call('HSET', KEYS[1], 'name', ARGV[7]) end
local changed = 0
if presence == 'offline' or presence == 'reconnecting' then
  changed = 1
  redis.call('HSET', KEYS[1], 'presence', 'online', 'since', ARGV[8])
  redis.call('ZREM', KEYS[5], ARGV[9])
end
return {changed, redis.call('HGETALL', KEYS[1])}
"""

# KEYS: user, conns, nconns, grace   ARGV: conn_id, ref, now, deadline, tail
_DISCONNECT = (
    _DROP
    + """
redis.call('SREM', KEYS[3], ARGV[2])
return drop(KEYS[1], KEYS[2], KEYS[4], ARGV[1], ARGV[3], ARGV[4], ARGV[5])
"""
)

# KEYS: user, grace   ARGV: now, tail
_FINISH = """
local presence = redis.call('HGET', KEYS[1], 'presence')
if not presence then return false end
if presence == 'finished' then return {0, redis.call('HGETALL', KEYS[1])} end
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[1], 'presence', 'finished', 'since', ARGV[1])
return {1, redis.call('HGETALL', KEYS[1])}
"""

# KEYS: grace   ARGV: now, batch. Returns {entries claimed, records gone offline}.
_EXPIRE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local out = {}
for _, tail in ipairs(due) do
  redis.call('ZREM', KEYS[1], tail)
  local ukey = 'ph:user:' .. tail
  if redis.call('HGET', ukey, 'presence') == 'reconnecting'
      and redis.call('SCARD', 'ph:conns:' .. tail) == 0 then
    redis.call('HSET', ukey, 'presence', 'offline', 'since', ARGV[1])
    out[#out + 1] = redis.call('HGETALL', ukey)
  end
end
return {#due, out}
"""

# KEYS: nodes, grace   ARGV: now, deadline. Claims one dead node: {node, records} or {}.
_REAP = (
    _DROP
    + """
local function esc(s)
  return (string.gsub((string.gsub(s, '%%', '%%25')), ':', '%%3A'))
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)
if #due == 0 then return {} end
local node = due[1]
redis.call('ZREM', KEYS[1], node)
local nkey = 'ph:nconns:' .. node
local refs = redis.call('SMEMBERS', nkey)
redis.call('DEL', nkey)
local out = {}
for _, raw in ipairs(refs) do
  local ref = cjson.decode(raw)
  local tail = esc(ref.event_id) .. ':' .. esc(ref.user_id)
  local moved = drop('ph:user:' .. tail, 'ph:conns:' .. tail, KEYS[2], ref.conn_id,
                     ARGV[1], ARGV[2], tail)
  if moved and moved[1] == 1 then out[#out + 1] = moved[2] end
end
return {node, out}
"""
)

# KEYS: user   ARGV: field, value, field, value, ...
_SET_STATUS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local changed = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) ~= ARGV[i + 1] then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    changed = 1
  end
end
return {changed, redis.call('HGETALL', KEYS[1])}
"""

# KEYS: user, flags   ARGV: flag
_ADD_FLAG = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'flags', redis.call('RPUSH', KEYS[2], ARGV[1]))
return redis.call('HGETALL', KEYS[1])
"""

# KEYS: once   ARGV: now, until, px. The deadline is compared with `now`, not
# Redis's clock (SET NX PX alone would make fake-clock tests lie); PX only
# garbage-collects the key at about the same time.
_ONCE = """
local until_ = redis.call('GET', KEYS[1])
if until_ and tonumber(until_) > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""


def _esc(part: str) -> str:
    return part.replace("%", "%25").replace(":", "%3A")


def _tail(event_id: str, user_id: str) -> str:
    return f"{_esc(event_id)}:{_esc(user_id)}"


def _user_keys(tail: str) -> list[str]:
    return [f"{P}user:{tail}", f"{P}conns:{tail}"]


def _num(value: float) -> str:
    """repr() of a float is its shortest exact form; Redis and Lua parse it back bit for bit."""
    return repr(float(value))


def _ref(ref: ConnRef) -> bytes:
    return orjson.dumps(asdict(ref))


def _record(row: list[bytes] | dict[bytes, bytes]) -> UserRecord:
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
    return Transition(_record(reply[1]), bool(reply[0]))


class RedisStore(RedisRooms, RedisAllocation, RedisTimelines, RedisWebhooks):
    """The `Store` for many nodes. `batch` bounds how many graces one script claims."""

    def __init__(self, url: str, *, batch: int = 256) -> None:
        # A blocking pool: a burst of handshakes waits for a connection instead of failing with
        # MaxConnectionsError (the default pool's behaviour in redis-py 8).
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=POOL_TIMEOUT_S,
            socket_keepalive=True,
            health_check_interval=15,
        )
        self._redis = aioredis.Redis(connection_pool=pool)
        self._batch = batch
        self._pubsub: PubSub = self._redis.pubsub()
        self._pubsub_lock = asyncio.Lock()
        self._handlers: dict[str, MessageHandler] = {}
        self._reader: asyncio.Task[None] | None = None
        self.handler_errors = 0
        """Messages whose handler raised (logged, then dropped)."""
        self.read_errors = 0
        """Pub/sub read failures the reader recovered from."""
        script = self._redis.register_script
        self._create_event = script(_CREATE_EVENT)
        self._connect = script(_CONNECT)
        self._disconnect = script(_DISCONNECT)
        self._finish = script(_FINISH)
        self._expire = script(_EXPIRE)
        self._reap = script(_REAP)
        self._set_status = script(_SET_STATUS)
        self._add_flag = script(_ADD_FLAG)
        self._once = script(_ONCE)
        self._register_room_scripts()
        self._register_alloc_scripts()
        self._register_timeline_scripts()
        self._init_webhooks()

    async def start(self) -> None:
        """Connections open lazily; `ping()` is the readiness check."""
        return None

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        self._handlers.clear()
        await self._pubsub.aclose()
        await self._redis.aclose(close_connection_pool=True)

    async def ping(self) -> None:
        await self._redis.ping()

    # events

    async def create_event(self, config: EventConfig) -> bool:
        keys = [f"{P}event:{config.event_id}", f"{P}events"]
        args = [orjson.dumps(config.to_dict()), config.event_id]
        return bool(await self._create_event(keys=keys, args=args))

    async def get_event(self, event_id: str) -> EventConfig | None:
        raw = await self._redis.get(f"{P}event:{event_id}")
        return None if raw is None else EventConfig.from_dict(orjson.loads(raw))

    async def list_events(self) -> list[EventConfig]:
        ids = await self._redis.smembers(f"{P}events")
        if not ids:
            return []
        raws = await self._redis.mget([f"{P}event:{i.decode()}" for i in ids])
        events = [EventConfig.from_dict(orjson.loads(raw)) for raw in raws if raw is not None]
        return sorted(events, key=lambda e: e.event_id)

    async def save_event(self, config: EventConfig) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(f"{P}event:{config.event_id}", orjson.dumps(config.to_dict()))
            pipe.sadd(f"{P}events", config.event_id)
            await pipe.execute()

    # presence

    async def connect(self, ref: ConnRef, *, role: str, name: str | None, now: float) -> Transition:
        tail = _tail(ref.event_id, ref.user_id)
        keys = [*_user_keys(tail), f"{P}nconns:{ref.node_id}", f"{P}eusers:{ref.event_id}", GRACE]
        named = ["0", ""] if name is None else ["1", name]
        args = [ref.conn_id, _ref(ref), ref.event_id, ref.user_id, role, *named, _num(now), tail]
        return cast(Transition, _transition(await self._connect(keys=keys, args=args)))

    async def disconnect(self, ref: ConnRef, *, now: float, grace_s: float) -> Transition | None:
        tail = _tail(ref.event_id, ref.user_id)
        keys = [*_user_keys(tail), f"{P}nconns:{ref.node_id}", GRACE]
        args = [ref.conn_id, _ref(ref), _num(now), _num(now + grace_s), tail]
        return _transition(await self._disconnect(keys=keys, args=args))

    async def finish(self, event_id: str, user_id: str, *, now: float) -> Transition | None:
        tail = _tail(event_id, user_id)
        reply = await self._finish(keys=[f"{P}user:{tail}", GRACE], args=[_num(now), tail])
        return _transition(reply)

    async def expire_graces(self, now: float) -> list[UserRecord]:
        expired: list[UserRecord] = []
        while True:
            claimed, records = await self._expire(keys=[GRACE], args=[_num(now), self._batch])
            expired.extend(_record(flat) for flat in records)
            if claimed < self._batch:
                return expired

    async def get_user(self, event_id: str, user_id: str) -> UserRecord | None:
        row = await self._redis.hgetall(f"{P}user:{_tail(event_id, user_id)}")
        return _record(row) if row else None

    async def list_users(self, event_id: str) -> list[UserRecord]:
        ids = sorted(i.decode() for i in await self._redis.smembers(f"{P}eusers:{event_id}"))
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id in ids:
                pipe.hgetall(f"{P}user:{_tail(event_id, user_id)}")
            rows = await pipe.execute()
        return [_record(row) for row in rows if row]

    async def set_video(self, event_id: str, user_id: str, video: Tristate) -> Transition | None:
        return await self.set_status(event_id, user_id, {"video": video})

    async def set_status(self, event_id: str, user_id: str, changes: dict[str, Any]) -> Transition | None:
        args = [str(part) for pair in sorted(changes.items()) for part in pair]
        reply = await self._set_status(keys=[f"{P}user:{_tail(event_id, user_id)}"], args=args)
        return _transition(reply)

    # nodes

    async def node_alive(self, node_id: str, *, until: float) -> bool:
        added = await self._redis.zadd(NODES, {node_id: until})
        return not added

    async def node_gone(self, node_id: str) -> None:
        await self._redis.zrem(NODES, node_id)

    async def reap_dead_nodes(self, *, now: float, grace_s: float) -> list[UserRecord]:
        moved: list[UserRecord] = []
        while reply := await self._reap(keys=[NODES, GRACE], args=[_num(now), _num(now + grace_s)]):
            node, records = reply
            log.warning("node %s missed its liveness deadline; releasing its sockets", node.decode())
            moved.extend(_record(flat) for flat in records)
        return moved

    # flags

    async def add_flag(self, flag: FlagRecord) -> UserRecord | None:
        tail = _tail(flag.event_id, flag.candidate_id)
        keys = [f"{P}user:{tail}", f"{P}flags:{tail}"]
        flat = await self._add_flag(keys=keys, args=[orjson.dumps(flag.to_dict())])
        return None if flat is None else _record(flat)

    async def list_flags(self, event_id: str, candidate_id: str) -> list[FlagRecord]:
        raws = await self._redis.lrange(f"{P}flags:{_tail(event_id, candidate_id)}", 0, -1)
        return [FlagRecord.from_dict(orjson.loads(raw)) for raw in raws]

    # dedupe

    async def once(self, key: str, *, now: float, ttl_s: float) -> bool:
        px = max(1, math.ceil(ttl_s * 1000))
        return bool(await self._once(keys=[f"{P}once:{key}"], args=[_num(now), _num(now + ttl_s), px]))

    async def seen(self, keys: list[str], *, now: float) -> list[bool]:
        if not keys:
            return []
        untils = await self._redis.mget([f"{P}once:{key}" for key in keys])
        return [until is not None and float(until) > now for until in untils]

    async def mark_seen(self, keys: list[str], *, now: float, ttl_s: float) -> None:
        if not keys:
            return
        px = max(1, math.ceil(ttl_s * 1000))
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(f"{P}once:{key}", _num(now + ttl_s), px=px)
            await pipe.execute()

    # cross-node messages

    async def publish(self, topic: str, payload: bytes) -> None:
        await self._redis.publish(f"{TOPIC}{topic}", payload)

    async def subscribe(self, topic: str, handler: MessageHandler) -> None:
        """One shared pub/sub connection; the reader task starts with the first topic."""
        async with self._pubsub_lock:
            await self._pubsub.subscribe(f"{TOPIC}{topic}")
            self._handlers[topic] = handler
            if self._reader is None:
                self._reader = asyncio.create_task(self._read(), name="proctorhub-redis-pubsub")

    async def unsubscribe(self, topic: str) -> None:
        async with self._pubsub_lock:
            if self._handlers.pop(topic, None) is not None:
                await self._pubsub.unsubscribe(f"{TOPIC}{topic}")

    async def _read(self) -> None:
        """Deliver messages until cancelled; a lost connection is retried with backoff."""
        backoff = BACKOFF_MIN_S
        while True:
            try:
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=READ_TIMEOUT_S
                )
            except Exception as exc:
                self.read_errors += 1
                log.warning("redis pub/sub read failed (%r); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            backoff = BACKOFF_MIN_S
            if message is not None and message["type"] == "message":
                self._dispatch(message["channel"], message["data"])

    def _dispatch(self, channel: bytes, payload: bytes) -> None:
        topic = channel.decode()[len(TOPIC) :]
        handler = self._handlers.get(topic)
        if handler is None:
            return
        try:
            handler(topic, payload)
        except Exception:
            self.handler_errors += 1
            log.exception("handler for topic %s raised; message dropped", topic)
