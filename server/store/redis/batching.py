"""A Redis client that sends the commands issued in one event-loop turn as one write on one connection.

A node under a join storm has hundreds of coroutines each awaiting one Redis command at a time.
Sent one by one, every command pays redis-py's whole path (a pool checkout, a health check, a write,
a read under its own timeout, a release: about 75 µs of the node's CPU here, against 23 µs for the
bare round trip). So commands are queued as they are issued and flushed once per loop turn: the
turn's commands go out in one write on the node's command connection, a connection kept for them
(`_Pipe`). Redis answers a connection's commands in the order they came, so the connection's
protocol hands each reply to the oldest caller still waiting as it reads it, and a turn's write never
waits for the replies to the turn before. Under load the writes fill by themselves; alone, a command
goes out on the next turn.

Each caller still gets its own reply or its own error (a script's NOSCRIPT comes back to that call,
which loads the script and sends it again). When the connection is lost, what it left unanswered is
sent again through redis-py's own path with its retries (`_send_pooled`), as redis-py's pipeline
does, and the next turn opens a new connection. Blocking reads, transactions (`pipeline()`) and
pub/sub keep their own connections and never enter a batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
from collections import deque
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from hiredis import PushNotification, Reader, pack_command
from redis._parsers.base import BaseParser
from redis._parsers.response_callbacks import _get_response_callback
from redis.asyncio.connection import Connection
from redis.client import EMPTY_RESPONSE, NEVER_DECODE
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from server.store.redis.taken import TakenConnection

MAX_BATCH = 256
"""Commands per write (and per exchange on redis-py's path): a storm's turn does not become one
write of megabytes."""

BLOCKING = frozenset({"BLPOP", "BRPOP", "BLMOVE", "BRPOPLPUSH", "BZPOPMIN", "BZPOPMAX", "BLMPOP", "WAIT"})
"""Commands that may wait on the server: in a batch they would hold up every command behind them."""

SPECIAL_OPTIONS = (NEVER_DECODE, EMPTY_RESPONSE)
"""Options that change how redis-py reads a reply: such commands take redis-py's own path."""

Queued = tuple[tuple[Any, ...], dict[str, Any], "asyncio.Future[Any]"]
Packed = tuple[bytes, Any, dict[str, Any], "asyncio.Future[Any]"]
"""A queued command in Redis's protocol: (bytes, its name, its options, its caller's reply)."""

_MORE = object()
"""What the reply parser returns while a reply is still incomplete (a reply may itself be False)."""


def _word(arg: Any) -> str:
    return (arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)).upper()


def _waits(args: tuple[Any, ...]) -> bool:
    name = _word(args[0])
    if name in BLOCKING:
        return True
    return name in ("XREAD", "XREADGROUP") and any(_word(a) == "BLOCK" for a in args[1:])


class BatchingRedis(aioredis.Redis):
    """`redis.asyncio.Redis` whose single commands travel in per-turn writes (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queue: list[Queued] = []
        self._flush_loop: asyncio.AbstractEventLoop | None = None
        """The loop a flush is scheduled on (None: none is). A client used from a new loop (tests
        run one per test) never waits on a flush that a closed loop will not run."""
        self._sending: set[asyncio.Task[None]] = set()
        self._pipe: _Pipe | None = None
        self._opening: asyncio.Task[_Pipe | None] | None = None
        self._pooled_only = False
        """Set when the pool's connections hold no asyncio streams to keep as a command connection
        (another redis-py): every batch takes redis-py's path."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if _waits(args) or any(option in options for option in SPECIAL_OPTIONS):
            return await super().execute_command(*args, **options)
        return await self.post(*args, **options)

    def post(self, *args: Any, **options: Any) -> asyncio.Future[Any]:
        """Queue a command now, in call order with every other, and return its reply to come: a
        caller that needs no answer (a PUBLISH) goes on without waiting a round trip."""
        loop = asyncio.get_running_loop()
        if self._flush_loop is not loop:
            if self._flush_loop is not None:  # left by a loop that closed before its flush ran
                self._queue = [q for q in self._queue if q[2].get_loop() is loop]
            self._flush_loop = loop
            loop.call_soon(self._flush)
        reply: asyncio.Future[Any] = loop.create_future()
        self._queue.append((args, options, reply))
        return reply

    def _flush(self) -> None:
        self._flush_loop = None
        queue, self._queue = self._queue, []
        loop = asyncio.get_running_loop()
        for start in range(0, len(queue), MAX_BATCH):
            entries = self._packed_entries(queue[start : start + MAX_BATCH])
            if not entries:
                continue
            pipe = self._pipe  # looked up per write: the one before may have found it lost
            if pipe is None or not pipe.usable(loop) or not pipe.send(entries):
                self._spawn(self._send(entries))

    def _packed_entries(self, batch: list[Queued]) -> list[Packed]:
        encode = self.get_encoder().encode
        entries: list[Packed] = []
        for args, options, reply in batch:
            try:
                entries.append((_packed(encode, args), args[0], options, reply))
            except Exception as exc:  # a bad argument fails its own call, not the batch
                _settle(reply, exc)
        return entries

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, entries: list[Packed]) -> None:
        """`entries` on the command connection, opened first if there is none; redis-py's path
        when it cannot be opened (its error reaches the callers from there)."""
        try:
            pipe = await self._opened_pipe()
        except Exception:
            pipe = None
        if pipe is None or not pipe.usable(asyncio.get_running_loop()) or not pipe.send(entries):
            await self._send_pooled(entries)

    async def _opened_pipe(self) -> _Pipe | None:
        if self._pooled_only:
            return None
        loop = asyncio.get_running_loop()
        if self._pipe is not None and self._pipe.usable(loop):
            return self._pipe
        opening = self._opening
        if opening is None or opening.get_loop() is not loop:
            opening = self._opening = loop.create_task(self._open_pipe())
            opening.add_done_callback(retrieved)  # its failure reaches the senders waiting on it
        try:
            return await asyncio.shield(opening)  # a cancelled caller leaves the opening to the others
        finally:
            if opening.done() and self._opening is opening:
                self._opening = None

    async def _open_pipe(self) -> _Pipe | None:
        conn = await self.connection_pool.get_connection()
        reader, writer = getattr(conn, "_reader", None), getattr(conn, "_writer", None)
        streams = isinstance(reader, asyncio.StreamReader) and isinstance(writer, asyncio.StreamWriter)
        if not streams:
            self._pooled_only = True
            await self.connection_pool.release(conn)
            return None
        assert isinstance(writer, asyncio.StreamWriter)
        self._pipe = _Pipe(self, conn, writer.transport)
        return self._pipe

    def _pipe_lost(self, pipe: _Pipe, unanswered: list[Packed]) -> None:
        """The command connection is gone: give it back to the pool closed, and send what it left
        unanswered again on redis-py's path."""
        if self._pipe is pipe:
            self._pipe = None
        self._spawn(self._retire(pipe.conn, unanswered))

    async def _retire(self, conn: Connection, unanswered: list[Packed]) -> None:
        try:
            with contextlib.suppress(Exception):  # closing what is already broken may fail: no matter
                await conn.disconnect(nowait=True)
            await self.connection_pool.release(conn)
        finally:  # whatever happened above, every caller still gets its reply or its error
            for start in range(0, len(unanswered), MAX_BATCH):
                await self._send_pooled(unanswered[start : start + MAX_BATCH])

    async def _send_pooled(self, entries: list[Packed]) -> None:
        """`entries` on a pooled connection, under redis-py's retry: what a lost connection left
        unanswered is sent again."""
        sent = _Progress(entries)
        pool = self.connection_pool
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
        """Write what is left of the batch, then read its replies in order, under one deadline
        (redis-py's own pipeline puts one around each reply it reads)."""
        rest = sent.rest()
        try:
            async with asyncio.timeout(conn.socket_timeout):
                await conn.send_packed_command(b"".join(packed for packed, _, _, _ in rest))
                for _, name, options, _ in rest:
                    try:
                        raw = await conn.read_response(timeout=math.inf)
                    except ResponseError as exc:
                        sent.answer(exc)
                    else:
                        sent.answer(await self._parsed(conn, name, options, raw))
        except TimeoutError as exc:
            await conn.disconnect(nowait=True)
            raise RedisTimeoutError(f"no reply from Redis within {conn.socket_timeout}s") from exc
        except BaseException:
            await conn.disconnect(nowait=True)  # replies still on the socket: never reuse it
            raise

    def _callback(self, conn: Connection, name: Any) -> Callable[..., Any] | None:
        if getattr(conn, "_resp2_fallback", False):
            return _get_response_callback(self.response_callbacks, name, conn)
        return self.response_callbacks.get(name)

    async def _parsed(self, conn: Connection, name: Any, options: dict[str, Any], raw: Any) -> Any:
        """A reply through its command's response callback, as redis-py would hand it back."""
        callback = self._callback(conn, name)
        if callback is None:
            return raw
        result = callback(raw, **{k: v for k, v in options.items() if k != "keys"})
        return await result if inspect.isawaitable(result) else result

    def _answer(self, conn: Connection, entry: Packed, raw: Any) -> None:
        """One reply read from the command connection, to its caller."""
        _, name, options, reply = entry
        if isinstance(raw, ResponseError):
            _settle(reply, raw)
            return
        callback = self._callback(conn, name)
        if callback is None:
            _settle(reply, raw)
            return
        try:
            result = callback(raw, **{k: v for k, v in options.items() if k != "keys"})
        except Exception as exc:
            result = exc
        if inspect.isawaitable(result):
            self._spawn(_settled_later(reply, result))
        else:
            _settle(reply, result)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        loop = asyncio.get_running_loop()
        if self._opening is not None and self._opening.get_loop() is loop:
            await asyncio.gather(self._opening, return_exceptions=True)
        pipe = self._pipe
        if pipe is not None and pipe.usable(loop):
            await pipe.answered()
        while sending := [task for task in self._sending if task.get_loop() is loop]:
            await asyncio.gather(*sending, return_exceptions=True)
        pipe = self._pipe
        if pipe is not None and pipe.usable(loop):
            self._pipe = None
            await pipe.close()
            try:
                await pipe.conn.disconnect(nowait=True)
            finally:
                await self.connection_pool.release(pipe.conn)
        await super().aclose(close_connection_pool)


class _Pipe(TakenConnection):
    """The command connection: each write appended to the commands awaiting replies, handed out in
    order as Redis sends them.

    The pipe takes over the connection's transport as its protocol: replies are parsed and handed
    out in `data_received`, in the loop turn that read them. Read through redis-py's stream, each
    reply took one more turn (the stream wakes a reader task, which then answers), and under a storm
    a turn is milliseconds long (see `taken.py`)."""

    def __init__(self, client: BatchingRedis, conn: Connection, transport: asyncio.Transport) -> None:
        self.conn = conn
        self._client = client
        self._loop = asyncio.get_running_loop()
        self._waiting: deque[Packed] = deque()
        self._answered: asyncio.Future[None] | None = None
        self._open = True
        self._timeout = conn.socket_timeout
        """The socket timeout redis-py would put on each reply: with commands waiting and no reply
        for this long, the connection counts as lost."""
        self._last_reply = 0.0
        self._watch: asyncio.TimerHandle | None = None
        self._parser = Reader(
            protocolError=InvalidResponse, replyError=BaseParser.parse_error, notEnoughData=_MORE
        )
        self._take(transport)

    def usable(self, loop: asyncio.AbstractEventLoop) -> bool:
        return self._open and self._loop is loop

    def send(self, entries: list[Packed]) -> bool:
        """Write `entries`; False (nothing taken) when the connection turns out lost on the write."""
        if not self._open:
            return False
        if not self._waiting:
            self._last_reply = self._loop.time()
            if self._timeout is not None and self._watch is None:
                self._watch = self._loop.call_later(self._timeout, self._watchdog)
        try:
            self._transport.write(b"".join(packed for packed, _, _, _ in entries))
        except Exception as exc:  # a transport already closed: the reader has not seen it yet
            self._lost(exc)
            return False
        self._waiting.extend(entries)
        return True

    async def answered(self) -> None:
        """Until every command sent so far has its reply (or the connection is lost)."""
        if self._open and self._waiting:
            self._answered = self._loop.create_future()
            await self._answered

    async def close(self) -> None:
        self._open = False
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        closed = RedisConnectionError("the Redis client was closed")
        while self._waiting:
            _settle(self._waiting.popleft()[3], closed)

    # -- the transport's protocol --------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if not self._open:
            return  # lost or closed: what is still waiting was handed to redis-py's path
        parser, waiting = self._parser, self._waiting
        try:
            parser.feed(data)
            while (raw := parser.gets()) is not _MORE:
                if isinstance(raw, PushNotification):
                    continue  # not an answer to a command (RESP3 pushes: none asked for here)
                if isinstance(raw, RedisConnectionError):  # LOADING and such: retried, as redis-py does
                    raise raw
                if not waiting:
                    raise InvalidResponse("Redis sent a reply no command is waiting for")
                self._client._answer(self.conn, waiting.popleft(), raw)
                self._last_reply = self._loop.time()
        except Exception as exc:
            self._lost(exc)
            return
        if not waiting and self._answered is not None:
            _settle(self._answered, None)
            self._answered = None

    def _watchdog(self) -> None:
        self._watch = None
        if not self._open or not self._waiting or self._timeout is None:
            return
        silent = self._loop.time() - self._last_reply
        if silent >= self._timeout:
            self._lost(RedisTimeoutError(f"no reply from Redis within {self._timeout}s"))
        else:
            self._watch = self._loop.call_later(self._timeout - silent, self._watchdog)

    def _lost(self, exc: BaseException) -> None:
        if not self._open:
            return
        self._open = False
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        unanswered = list(self._waiting)
        self._waiting.clear()
        if self._answered is not None:
            _settle(self._answered, None)
        self._client._pipe_lost(self, unanswered)


def retrieved(task: asyncio.Task[Any]) -> None:
    """Mark a task's failure as read: those it concerns got it, and none may be left to log it."""
    if not task.cancelled():
        task.exception()


async def _settled_later(reply: asyncio.Future[Any], result: Any) -> None:
    try:
        value = await result
    except Exception as exc:
        _settle(reply, exc)
    else:
        _settle(reply, value)


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
