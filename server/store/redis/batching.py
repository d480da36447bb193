"""A Redis client that sends the commands issued in one event-loop turn as one pipeline.

A node under a join storm has hundreds of coroutines each awaiting one Redis command at a time.
Sent one by one, every command pays redis-py's whole path (a pool checkout, a write, a read, a
release: about 50 µs of the node's CPU here); sent together in a plain pipeline, about 15 µs. So
commands are queued as they are issued and flushed once per loop turn, in batches of at most
`MAX_BATCH`: under load the batches fill by themselves; alone, a command goes out on the next turn,
as before. Each caller still gets its own reply or its own error (a script's NOSCRIPT comes back to
that call, which loads the script and sends it again). Blocking reads, transactions (`pipeline()`)
and pub/sub keep their own connections and never enter a batch.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from hiredis import pack_command
from redis._parsers.response_callbacks import _get_response_callback
from redis.asyncio.connection import Connection
from redis.client import EMPTY_RESPONSE, NEVER_DECODE
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

MAX_BATCH = 256

BLOCKING = frozenset({"BLPOP", "BRPOP", "BLMOVE", "BRPOPLPUSH", "BZPOPMIN", "BZPOPMAX", "BLMPOP", "WAIT"})
"""Commands that may wait on the server: in a batch they would hold up every command behind them."""

SPECIAL_OPTIONS = (NEVER_DECODE, EMPTY_RESPONSE)
"""Options that change how redis-py reads a reply: such commands take redis-py's own path."""

Queued = tuple[tuple[Any, ...], dict[str, Any], "asyncio.Future[Any]"]
Packed = tuple[bytes, Any, dict[str, Any], "asyncio.Future[Any]"]
"""A queued command in Redis's protocol: (bytes, its name, its options, its caller's reply)."""


def _word(arg: Any) -> str:
    return (arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)).upper()


def _waits(args: tuple[Any, ...]) -> bool:
    name = _word(args[0])
    if name in BLOCKING:
        return True
    return name in ("XREAD", "XREADGROUP") and any(_word(a) == "BLOCK" for a in args[1:])


class BatchingRedis(aioredis.Redis):
    """`redis.asyncio.Redis` whose single commands travel in per-turn pipelines (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queue: list[Queued] = []
        self._flush_loop: asyncio.AbstractEventLoop | None = None
        """The loop a flush is scheduled on (None: none is). A client used from a new loop (tests
        run one per test) never waits on a flush that a closed loop will not run."""
        self._sending: set[asyncio.Task[None]] = set()

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if _waits(args) or any(option in options for option in SPECIAL_OPTIONS):
            return await super().execute_command(*args, **options)
        loop = asyncio.get_running_loop()
        if self._flush_loop is not loop:
            if self._flush_loop is not None:  # left by a loop that closed before its flush ran
                self._queue = [q for q in self._queue if q[2].get_loop() is loop]
            self._flush_loop = loop
            loop.call_soon(self._flush)
        reply: asyncio.Future[Any] = loop.create_future()
        self._queue.append((args, options, reply))
        return await reply

    def _flush(self) -> None:
        self._flush_loop = None
        queue, self._queue = self._queue, []
        for start in range(0, len(queue), MAX_BATCH):
            task = asyncio.get_running_loop().create_task(self._send(queue[start : start + MAX_BATCH]))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[Queued]) -> None:
        """The batch on one connection; every reply (or error) to the call that asked for it."""
        if len(batch) == 1:
            args, options, reply = batch[0]
            try:
                result = await super().execute_command(*args, **options)
            except BaseException as exc:  # handed to the caller, who awaits it
                _settle(reply, exc)
            else:
                _settle(reply, result)
            return
        pool = self.connection_pool
        encode = self.get_encoder().encode
        sent = _Progress([])
        for args, options, reply in batch:
            try:
                sent.entries.append((_packed(encode, args), args[0], options, reply))
            except Exception as exc:  # a bad argument fails its own call, not the batch
                _settle(reply, exc)
        if not sent.entries:
            return
        try:
            conn = await pool.get_connection()
        except BaseException as exc:
            sent.fail(exc)
            return
        try:
            await conn.retry.call_with_retry(lambda: self._exchange(conn, sent), lambda _: conn.disconnect())
        except BaseException as exc:
            sent.fail(exc)
        finally:
            await pool.release(conn)

    async def _exchange(self, conn: Connection, sent: _Progress) -> None:
        """Write what is left of the batch, then read its replies in order, under one deadline.

        redis-py's own pipeline puts a timeout around each reply it reads (about 6 µs each, a
        tenth of the node's CPU in a join storm); one around the whole exchange keeps the same
        bound on a Redis that stopped answering. What a lost connection left unanswered is sent
        again (conn.retry, as redis-py's pipeline does)."""
        rest = sent.rest()
        try:
            async with asyncio.timeout(conn.socket_timeout):
                await conn.send_packed_command(b"".join(packed for packed, _, _, _ in rest))
                for _, name, options, _ in rest:
                    try:
                        sent.answer(await self._reply(conn, name, options))
                    except ResponseError as exc:
                        sent.answer(exc)
        except TimeoutError as exc:
            await conn.disconnect(nowait=True)
            raise RedisTimeoutError(f"no reply from Redis within {conn.socket_timeout}s") from exc
        except BaseException:
            await conn.disconnect(nowait=True)  # replies still on the socket: never reuse it
            raise

    async def _reply(self, conn: Connection, name: Any, options: dict[str, Any]) -> Any:
        """One reply read without a timeout of its own, through the command's response callback."""
        raw = await conn.read_response(timeout=math.inf)
        callback = (
            _get_response_callback(self.response_callbacks, name, conn)
            if conn._resp2_fallback
            else self.response_callbacks.get(name)
        )
        if callback is None:
            return raw
        options = {k: v for k, v in options.items() if k != "keys"}
        result = callback(raw, **options)
        return await result if inspect.isawaitable(result) else result

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        loop = asyncio.get_running_loop()
        sending = [task for task in self._sending if task.get_loop() is loop]
        if sending:
            await asyncio.gather(*sending, return_exceptions=True)
        await super().aclose(close_connection_pool)


def _settle(reply: asyncio.Future[Any], result: Any) -> None:
    if reply.done():
        return  # the caller gave up (cancelled); the command went out all the same, as it would have
    if isinstance(result, asyncio.CancelledError):
        reply.cancel()
    elif isinstance(result, BaseException):
        reply.set_exception(result)
    else:
        reply.set_result(result)


PLAIN = frozenset({str, bytes, int, float})
"""Argument types hiredis packs exactly as redis-py's encoder would (a float by its repr)."""


def _packed(encode: Callable[[Any], bytes | memoryview | bytearray], args: tuple[Any, ...]) -> bytes:
    """One command in Redis's protocol, by hiredis: redis-py's path (a check for memoryviews, a
    generator and a list per command) cost a tenth of a storm's sends."""
    name = args[0]
    if isinstance(name, str) and " " in name:  # "CLIENT KILL", "SCRIPT LOAD": words of their own
        args = (*name.split(), *args[1:])
    if not all(type(arg) in PLAIN for arg in args):  # bools refused, memoryviews copied: the encoder
        args = tuple(bytes(encode(arg)) for arg in args)
    return pack_command(args)


class _Progress:
    """A batch's replies handed out so far: a retry sends only the rest."""

    def __init__(self, entries: list[Packed]) -> None:
        self.entries = entries
        self._next = 0

    def rest(self) -> list[Packed]:
        return self.entries[self._next :]

    def answer(self, result: Any) -> None:
        _settle(self.entries[self._next][3], result)
        self._next += 1

    def fail(self, exc: BaseException) -> None:
        for *_, reply in self.rest():
            _settle(reply, exc)
        self._next = len(self.entries)
