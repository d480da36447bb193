"""What every Redis part shares: the client, the key scheme, and the Lua scripts (loaded once).

Keys start with `ph:`; ids inside keys are escaped (`%` -> `%25`, `:` -> `%3A`) so `a:b`/`c` and
`a`/`b:c` never share a key. Times travel as `repr(float)` strings: Redis and Lua parse them back
bit for bit. Scripts live in `lua/*.lua`; a script that needs a shared function (the `drop` of
one socket, used by disconnect and by the reaping of a dead node) is loaded with it in front.
Every script is loaded before the node reports ready (`load_scripts`), so the first arrivals of an
exam do not each meet a NOSCRIPT; after a Redis restart, the first caller to meet one loads them all
again (`Script`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from server.store.redis.batching import BatchingRedis, retrieved

P = "ph:"
KEEP_S = 30 * 24 * 3600
"""The monitor's timelines and alerts, and browser backfill's bookkeeping, are kept a month after
their last change (reports are read after the exam)."""
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


class Script(AsyncScript):
    """A Lua script sent by its SHA. When Redis answers NOSCRIPT (it restarted, or was flushed), one
    caller loads every script of the client again and the other callers wait for those loads, as do
    calls made meanwhile: a join storm meeting a restarted Redis loads each script once, not once per
    caller (each load is a compile that holds up all of Redis, and each NOSCRIPT an exception raised
    in the node)."""

    def __init__(self, client: aioredis.Redis, source: str) -> None:
        super().__init__(client, source)
        self._loading: asyncio.Task[Any] | None = None

    async def __call__(
        self,
        keys: Sequence[Any] | None = None,
        args: Iterable[Any] | None = None,
        client: aioredis.Redis | None = None,
    ) -> Any:
        if client is not None and client is not self.registered_client:
            return await super().__call__(keys, args, client)  # a pipeline loads its scripts itself
        keys = list(keys or ())
        argv = (*keys, *(args or ()))
        loading = self._loading
        if loading is not None and not loading.done() and loading.get_loop() is asyncio.get_running_loop():
            await asyncio.shield(loading)  # a load is under way: an EVALSHA now would only meet NOSCRIPT
        try:
            return await self.registered_client.evalsha(self.sha, len(keys), *argv)
        except NoScriptError:
            # Redis lost its scripts (a restart, a flush): load them all again, not only this one.
            await asyncio.gather(self.load(), load_scripts(self.registered_client))
            return await self.registered_client.evalsha(self.sha, len(keys), *argv)

    async def load(self) -> None:
        """SCRIPT LOAD, shared with the callers asking while it is under way."""
        loop = asyncio.get_running_loop()
        loading = self._loading
        if loading is None or loading.done() or loading.get_loop() is not loop:
            loading = self._loading = loop.create_task(self.registered_client.script_load(self.script))
            loading.add_done_callback(retrieved)  # its failure reaches the callers awaiting it
        await asyncio.shield(loading)  # a cancelled caller leaves the load to the others


def _registered(client: aioredis.Redis) -> dict[str, Script]:
    """The scripts registered on `client`, by their text. Kept on the client itself: a map keyed by
    the client would keep it alive through its scripts, which hold it."""
    registered: dict[str, Script] = vars(client).setdefault("_proctorhub_scripts", {})
    return registered


def script(client: aioredis.Redis, *names: str) -> Script:
    """The scripts `names` (in that order, as one) registered on `client`: sent by SHA, loaded once
    (by `load_scripts`, or by the first call). The same text registered twice is one `Script`."""
    registered = _registered(client)
    source = "\n".join(_source(n) for n in names)
    if source not in registered:
        registered[source] = Script(client, source)
    return registered[source]


async def load_scripts(client: aioredis.Redis) -> None:
    """Load every script registered on `client` (one batch of SCRIPT LOADs)."""
    await asyncio.gather(*(s.load() for s in _registered(client).values()))


Write = tuple[str, str, Sequence[Any]]
"""One write of `kept_writes`: (key, command, its arguments after the key)."""


def flat(mapping: Mapping[str, Any]) -> list[Any]:
    """HSET's arguments for `mapping`: field, value, field, value..."""
    return [part for item in mapping.items() for part in item]


async def kept_writes(run: Script, ttl_s: int, writes: Sequence[Write]) -> list[Any]:
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
