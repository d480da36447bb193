"""LTI registrations, pending logins, attempts and the tool key in Redis.

ph:lti:platforms                      zset platform id, scored by created_at
ph:lti:platform:{id}                  LtiPlatform JSON
ph:lti:issuer:{issuer}:{client_id}    the platform id of that pair (refuses a second registration)
ph:lti:login:{state}                  LtiLogin JSON, expiring with it (GETDEL: taken once)
ph:lti:attempts:{event}:{user}        hash attempt_number -> LtiAttempt JSON
ph:lti:acs:{event}:{user}             hash call id -> AcsCall JSON
ph:lti:acs-pending                    set of `{event}:{user}:{call id}` (escaped) of pending calls
ph:lti:tool-key                       the generated tool key's PEM (SET NX: the first node wins)
"""

from __future__ import annotations

import math

import orjson
import redis.asyncio as aioredis

from server.store.lti import AcsCall, LtiAttempt, LtiLogin, LtiPlatform
from server.store.redis.connection import P, esc, num, script, tail

PLATFORMS = f"{P}lti:platforms"
TOOL_KEY = f"{P}lti:tool-key"
ACS_PENDING = f"{P}lti:acs-pending"


def _platform_key(platform_id: str) -> str:
    return f"{P}lti:platform:{esc(platform_id)}"


def _issuer_key(issuer: str, client_id: str) -> str:
    return f"{P}lti:issuer:{esc(issuer)}:{esc(client_id)}"


class RedisLti:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._add = script(client, "add_lti_platform")

    async def add_platform(self, platform: LtiPlatform) -> bool:
        keys = [
            _issuer_key(platform.issuer, platform.client_id),
            _platform_key(platform.platform_id),
            PLATFORMS,
        ]
        args = [platform.platform_id, orjson.dumps(platform.to_dict()), num(platform.created_at)]
        return bool(await self._add(keys=keys, args=args))

    async def get_platform(self, platform_id: str) -> LtiPlatform | None:
        raw = await self._redis.get(_platform_key(platform_id))
        return None if raw is None else LtiPlatform.from_dict(orjson.loads(raw))

    async def list_platforms(self) -> list[LtiPlatform]:
        ids = [i.decode() for i in await self._redis.zrange(PLATFORMS, 0, -1)]
        if not ids:
            return []
        raws = await self._redis.mget([_platform_key(i) for i in ids])
        return [LtiPlatform.from_dict(orjson.loads(raw)) for raw in raws if raw is not None]

    async def delete_platform(self, platform_id: str) -> bool:
        platform = await self.get_platform(platform_id)
        if platform is None:
            return False
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(_platform_key(platform_id))
            pipe.delete(_issuer_key(platform.issuer, platform.client_id))
            pipe.zrem(PLATFORMS, platform_id)
            deleted, _, _ = await pipe.execute()
        return bool(deleted)

    async def put_login(self, login: LtiLogin, *, now: float) -> None:
        px = max(1, math.ceil((login.expires_at - now) * 1000))
        await self._redis.set(f"{P}lti:login:{esc(login.state)}", orjson.dumps(login.to_dict()), px=px)

    async def take_login(self, state: str, *, now: float) -> LtiLogin | None:
        raw = await self._redis.getdel(f"{P}lti:login:{esc(state)}")
        if raw is None:
            return None
        login = LtiLogin.from_dict(orjson.loads(raw))
        return login if login.expires_at > now else None

    async def save_attempt(self, attempt: LtiAttempt) -> None:
        key = f"{P}lti:attempts:{tail(attempt.event_id, attempt.user_id)}"
        await self._redis.hset(key, str(attempt.attempt_number), orjson.dumps(attempt.to_dict()))

    async def attempts(self, event_id: str, user_id: str) -> list[LtiAttempt]:
        raw = await self._redis.hgetall(f"{P}lti:attempts:{tail(event_id, user_id)}")
        held = [LtiAttempt.from_dict(orjson.loads(v)) for v in raw.values()]
        return sorted(held, key=lambda a: a.attempt_number)

    async def save_acs_call(self, call: AcsCall) -> None:
        who = tail(call.event_id, call.user_id)
        member = f"{who}:{esc(call.call_id)}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(f"{P}lti:acs:{who}", call.call_id, orjson.dumps(call.to_dict()))
            if call.state == "pending":
                pipe.sadd(ACS_PENDING, member)
            else:
                pipe.srem(ACS_PENDING, member)
            await pipe.execute()

    async def acs_calls(self, event_id: str, user_id: str) -> list[AcsCall]:
        raw = await self._redis.hgetall(f"{P}lti:acs:{tail(event_id, user_id)}")
        held = [AcsCall.from_dict(orjson.loads(v)) for v in raw.values()]
        return sorted(held, key=lambda c: (c.created_at, c.call_id))

    async def pending_acs_calls(self) -> list[AcsCall]:
        members = [m.decode() for m in await self._redis.smembers(ACS_PENDING)]
        if not members:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for member in members:
                who, _, call_id = member.rpartition(":")
                pipe.hget(f"{P}lti:acs:{who}", call_id.replace("%3A", ":").replace("%25", "%"))
            raws = await pipe.execute()
        calls = [AcsCall.from_dict(orjson.loads(raw)) for raw in raws if raw is not None]
        return sorted((c for c in calls if c.state == "pending"), key=lambda c: (c.created_at, c.call_id))

    async def tool_key(self, generated_pem: str) -> str:
        await self._redis.set(TOOL_KEY, generated_pem, nx=True)
        stored = await self._redis.get(TOOL_KEY)
        return generated_pem if stored is None else stored.decode()
