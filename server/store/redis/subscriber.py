"""The node's pub/sub connection: each message parsed and handed out in the loop turn that read it.

Read through redis-py's `PubSub.get_message`, every message woke a reader task and went through a
timeout context and several layers of parsing: under a join storm, where each arrival brings a few
messages back to its node, that was about 4% of the node's time. redis-py still opens the connection;
its transport is then taken over (`taken.py`), as the command connection's is, and Redis's pushes
are parsed by hiredis as they come.

A connection that hears nothing at all for two health periods (not even the answer to its PING) is
taken as lost: a Redis host that vanished without a reset would otherwise leave the node deaf.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterable

from hiredis import Reader, pack_command
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from server.store.redis.taken import TakenConnection

HEALTH_S = 15.0
"""How often an idle subscriber connection PINGs Redis (redis-py's `health_check_interval` here)."""

_MORE = object()
"""What the parser returns while a push is still incomplete."""

Deliver = Callable[[bytes, bytes], None]
"""Called with (channel, payload) for each message, in the order Redis sent them."""


class SubscriberConnection(TakenConnection):
    """One subscribed connection. `lost` is told once, with why, when the connection ends without
    `close()` (Redis went away, a bad push, a silent connection)."""

    what = "pub/sub connection"

    def __init__(
        self,
        conn: Connection,
        transport: asyncio.Transport,
        deliver: Deliver,
        lost: Callable[[SubscriberConnection, BaseException], None],
        *,
        health_s: float = HEALTH_S,
    ) -> None:
        self.conn = conn
        self._deliver = deliver
        self._on_lost = lost
        self._loop = asyncio.get_running_loop()
        self._parser = Reader(protocolError=InvalidResponse, replyError=ResponseError, notEnoughData=_MORE)
        self._confirming: dict[bytes, deque[asyncio.Future[None]]] = {}
        self.open = True
        self._heard = True
        self._health_s = health_s
        self._watch = self._loop.call_later(health_s, self._health)
        self._take(transport)

    def subscribe(self, channels: Iterable[str]) -> list[asyncio.Future[None]]:
        """SUBSCRIBE; a future per channel, resolved when Redis confirms it."""
        names = [c.encode() for c in channels]
        if names:
            self._write(("SUBSCRIBE", *names))  # raises when lost: then nothing waits
        waits = [self._loop.create_future() for _ in names]
        for name, wait in zip(names, waits, strict=True):
            self._confirming.setdefault(name, deque()).append(wait)
        return waits

    def unsubscribe(self, channel: str) -> None:
        self._write(("UNSUBSCRIBE", channel))

    def close(self) -> None:
        """End it on purpose: `lost` is not told; waiting subscribes fail."""
        self._end(RedisConnectionError("the pub/sub connection was closed"), tell=False)

    def _write(self, command: tuple[str | bytes, ...]) -> None:
        if not self.open:
            raise RedisConnectionError("the pub/sub connection is lost")
        self._transport.write(pack_command(command))

    # -- the transport's protocol --------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if not self.open:
            return
        self._heard = True
        parser = self._parser
        try:
            parser.feed(data)
            while (push := parser.gets()) is not _MORE:
                if isinstance(push, Exception):  # an error reply or LOADING: start afresh
                    raise push
                if not isinstance(push, list) or not push:
                    continue  # a RESP3 PONG
                kind = push[0]
                if kind == b"message":
                    self._deliver(push[1], push[2])
                elif kind == b"subscribe":
                    waits = self._confirming.get(push[1])
                    if waits:
                        _settle(waits.popleft(), None)
                        if not waits:
                            del self._confirming[push[1]]
        except Exception as exc:
            self._end(exc)

    def _lost(self, exc: BaseException) -> None:
        self._end(exc)

    def _health(self) -> None:
        if not self.open:
            return
        if not self._heard:
            self._end(RedisTimeoutError(f"no answer from Redis on pub/sub within {2 * self._health_s:g}s"))
            return
        self._heard = False
        try:
            self._write(("PING",))
        except Exception as exc:
            self._end(exc)
            return
        self._watch = self._loop.call_later(self._health_s, self._health)

    def _end(self, exc: BaseException, *, tell: bool = True) -> None:
        if not self.open:
            return
        self.open = False
        self._watch.cancel()
        for waits in self._confirming.values():
            for wait in waits:
                _settle(wait, exc)
        self._confirming.clear()
        with contextlib.suppress(Exception):
            self._transport.close()
        if tell:
            self._on_lost(self, exc)


def _settle(wait: asyncio.Future[None], error: BaseException | None) -> None:
    if wait.done():
        return
    if error is None:
        wait.set_result(None)
    else:
        wait.set_exception(error)
        wait.exception()  # read: a subscribe that gave up waiting must not leave a warning behind
