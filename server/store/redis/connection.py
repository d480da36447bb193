"""What every Redis part shares: the client, the key scheme, and the Lua scripts (loaded once).

Keys start with `ph:`; ids inside keys are escaped (`%` -> `%25`, `:` -> `%3A`) so `a:b`/`c` and
`a`/`b:c` never share a key. Times travel as `repr(float)` strings: Redis and Lua parse them back
bit for bit. Scripts live in `lua/*.lua`; a script that needs a shared function (the `drop` of
one socket, used by disconnect and by the reaping of a dead node) is loaded with it in front.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from server.store.redis.batching import BatchingRedis

P = "ph:"
LUA = Path(__file__).resolve().parent / "lua"
MAX_CONNECTIONS = 64
POOL_TIMEOUT_S = 10.0


def esc(part: str) -> str:
    return part.replace("%", "%25").replace(":", "%3A")


def tail(event_id: str, user_id: str) -> str:
    """`{event}:{user}`, escaped: the suffix of a user's keys."""
    return f"{esc(event_id)}:{esc(user_id)}"


def num(value: float) -> str:
    """repr() of a float is its shortest exact form; Redis and Lua parse it back bit for bit."""
    return repr(float(value))


@functools.cache
def _source(name: str) -> str:
    return (LUA / f"{name}.lua").read_text()


def script(client: aioredis.Redis, *names: str) -> AsyncScript:
    """The scripts `names` (in that order, as one) registered on `client`: sent by SHA, loaded once."""
    return client.register_script("\n".join(_source(n) for n in names))


Write = tuple[str, str, Sequence[Any]]
"""One write of `kept_writes`: (key, command, its arguments after the key)."""


def flat(mapping: Mapping[str, Any]) -> list[Any]:
    """HSET's arguments for `mapping`: field, value, field, value..."""
    return [part for item in mapping.items() for part in item]


async def kept_writes(run: AsyncScript, ttl_s: int, writes: Sequence[Write]) -> list[Any]:
    """`writes` and an EXPIRE of every key they touch, atomically, in one command (`kept_writes.lua`,
    registered as `run`): a MULTI/EXEC would take a connection of its own outside the node's batch."""
    keys = list(dict.fromkeys(key for key, _, _ in writes))
    args: list[Any] = [ttl_s]
    for key, command, rest in writes:
        args += [keys.index(key) + 1, command, len(rest), *rest]
    return list(await run(keys=keys, args=args))


def connect(url: str) -> aioredis.Redis:
    # A blocking pool: a burst of handshakes waits for a connection instead of failing with
    # MaxConnectionsError (the default pool's behaviour in redis-py 8).
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_TIMEOUT_S,
        socket_keepalive=True,
        health_check_interval=15,
    )
    return BatchingRedis(connection_pool=pool)
