"""Messages between nodes on Redis pub/sub: one shared subscriber connection, read as it arrives.

A topic `t` is the channel `ph:topic:t`; node `n`'s own channel is `ph:node:n`, and its messages are
`kind` + a newline + the payload. The subscriber connection (`subscriber.py`) hands each message to
its handler in the loop turn that read it. A lost connection is opened again with backoff and
subscribes to every channel again; `epoch` counts such losses, so a reader that keeps state from
messages knows it may have missed some. A handler that raises is logged and counted, and the
connection reads on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math

import redis.asyncio as aioredis

from server.store.pubsub import NodeHandler
from server.store.records import MessageHandler
from server.store.redis.batching import BatchingRedis
from server.store.redis.connection import P, script, tail
from server.store.redis.subscriber import HEALTH_S, SubscriberConnection

log = logging.getLogger("proctorhub.store.redis")

TOPIC = f"{P}topic:"
NODE = f"{P}node:"
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 5.0
CONFIRM_S = 5.0
"""How long a subscribe waits for Redis to confirm it."""


class RedisPubSub:
    def __init__(self, client: aioredis.Redis, *, health_s: float = HEALTH_S) -> None:
        self._redis = client
        self._health_s = health_s
        self._lock = asyncio.Lock()
        """Held while subscribing and while opening the connection: one connection, one order."""
        self._channels: set[str] = set()
        self._handlers: dict[str, MessageHandler] = {}
        self._node_handlers: dict[str, NodeHandler] = {}
        self._node_channel: bytes | None = None
        self._conn: SubscriberConnection | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._dead: list[SubscriberConnection] = []
        """Lost connections not yet given back to the pool (the reconnecting task does)."""
        self._closed = False
        self._to_user = script(client, "send_to_user")
        self.epoch = 0
        """Connection losses so far: a change means messages may have been lost in between."""
        self.handler_errors = 0
        """Messages whose handler raised (logged, then dropped)."""
        self.read_errors = 0
        """Pub/sub connection losses and failed reconnects the node recovered from."""
        self.publish_errors = 0
        """PUBLISHes Redis did not take (logged at the 1st, 10th, 100th...)."""

    async def close(self) -> None:
        self._closed = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnecting
            self._reconnecting = None
        self._handlers.clear()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            self._dead.append(conn)
        while self._dead:
            await self._retire(self._dead.pop())

    async def publish(self, topic: str, payload: bytes) -> None:
        await self._post(f"{TOPIC}{topic}", payload)

    async def _post(self, channel: str, payload: bytes) -> None:
        """PUBLISH without waiting for Redis's count of receivers, which nobody reads: the command is
        queued at once, in order with the node's every other command, and a failure is counted and
        logged (a join no longer waits a round trip to tell the watchers)."""
        if not isinstance(self._redis, BatchingRedis):
            await self._redis.publish(channel, payload)
            return
        self._redis.post("PUBLISH", channel, payload).add_done_callback(self._published)

    def _published(self, reply: asyncio.Future[object]) -> None:
        if reply.cancelled() or reply.exception() is None:
            return
        self.publish_errors += 1
        if math.log10(self.publish_errors).is_integer():  # the 1st, 10th, 100th...: an outage, not a flood
            log.warning("redis PUBLISH failed (%d so far): %r", self.publish_errors, reply.exception())

    async def subscribe(self, topic: str, handler: MessageHandler) -> None:
        """Subscribed when it returns (Redis confirmed it); raises when Redis cannot be reached."""
        async with self._lock:
            self._handlers[topic] = handler
            try:
                await self._join(f"{TOPIC}{topic}")
            except BaseException:
                self._handlers.pop(topic, None)
                raise

    def on_node(self, kind: str, handler: NodeHandler) -> None:
        self._node_handlers[kind] = handler

    async def listen(self, node_id: str) -> None:
        channel = f"{NODE}{node_id}"
        async with self._lock:
            self._node_channel = channel.encode()
            await self._join(channel)

    async def _join(self, channel: str) -> None:
        """Add a channel to the connection's (opened now if there is none); the channel is not kept
        when this raises."""
        self._channels.add(channel)
        try:
            if self._conn is None:
                self._conn = await self._open()  # subscribes every channel, this one with them
            else:
                await self._confirmed(self._conn, [channel])
        except BaseException:
            self._channels.discard(channel)
            raise

    async def send(self, node_id: str, kind: str, payload: bytes) -> None:
        await self._post(f"{NODE}{node_id}", kind.encode() + b"\n" + payload)

    async def send_to_user(self, event_id: str, user_id: str, kind: str, payload: bytes) -> int:
        args = [NODE, kind.encode() + b"\n" + payload]
        return int(await self._to_user(keys=[f"{P}conns:{tail(event_id, user_id)}"], args=args))

    async def unsubscribe(self, topic: str) -> None:
        async with self._lock:
            if self._handlers.pop(topic, None) is None:
                return
            channel = f"{TOPIC}{topic}"
            self._channels.discard(channel)
            if self._conn is not None and self._conn.open:
                self._conn.unsubscribe(channel)

    # ------------------------------------------------------------------ the connection

    async def _open(self) -> SubscriberConnection:
        """A new subscriber connection, subscribed to every channel wanted now."""
        pool = self._redis.connection_pool
        conn = await pool.get_connection()
        writer = getattr(conn, "_writer", None)
        if not isinstance(writer, asyncio.StreamWriter):
            await pool.release(conn)
            raise RuntimeError("this redis-py keeps no asyncio stream on its connections: unsupported")
        health_s = self._health_s
        sub = SubscriberConnection(conn, writer.transport, self._dispatch, self._lost, health_s=health_s)
        try:
            await self._confirmed(sub, sorted(self._channels))
        except BaseException:
            sub.close()
            await self._retire(sub)
            raise
        return sub

    async def _confirmed(self, sub: SubscriberConnection, channels: list[str]) -> None:
        waits = sub.subscribe(channels)
        try:
            async with asyncio.timeout(CONFIRM_S):
                await asyncio.gather(*waits)
        except TimeoutError:
            # A connection that does not answer is no use: lost, so another is opened.
            self._lost(sub, TimeoutError("Redis did not confirm a subscribe"))
            sub.close()
            raise

    def _lost(self, sub: SubscriberConnection, exc: BaseException) -> None:
        """The node's connection ended: count it, and open another that subscribes to everything
        again. (One still being opened is the opener's to retire.)"""
        if sub is not self._conn:
            return
        self._conn = None
        self._dead.append(sub)
        self.read_errors += 1
        self.epoch += 1
        if self._closed:
            return
        log.warning("redis pub/sub connection lost (%r); opening it again", exc)
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = asyncio.get_running_loop().create_task(
                self._reconnect(), name="proctorhub-redis-pubsub"
            )

    async def _reconnect(self) -> None:
        backoff = BACKOFF_MIN_S
        while True:
            while self._dead:
                await self._retire(self._dead.pop())
            if self._closed:
                return
            await asyncio.sleep(backoff)
            try:
                async with self._lock:
                    if self._conn is None and self._channels:
                        self._conn = await self._open()
            except Exception as exc:
                self.read_errors += 1
                self.epoch += 1
                log.warning("redis pub/sub: opening failed (%r); again in %.1fs", exc, backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            if not self._dead:
                return

    async def _retire(self, sub: SubscriberConnection) -> None:
        """Give a closed connection back to the pool (closed: the pool opens it again when used)."""
        with contextlib.suppress(Exception):  # closing what is already broken may fail: no matter
            await sub.conn.disconnect(nowait=True)
        await self._redis.connection_pool.release(sub.conn)

    def _dispatch(self, channel: bytes, payload: bytes) -> None:
        if channel == self._node_channel:
            self._dispatch_node(payload)
            return
        topic = channel.decode()[len(TOPIC) :]
        handler = self._handlers.get(topic)
        if handler is None:
            return
        try:
            handler(topic, payload)
        except Exception:
            self.handler_errors += 1
            log.exception("handler for topic %s raised; message dropped", topic)

    def _dispatch_node(self, message: bytes) -> None:
        kind, _, payload = message.partition(b"\n")
        handler = self._node_handlers.get(kind.decode(errors="replace"))
        if handler is None:
            return
        try:
            handler(payload)
        except Exception:
            self.handler_errors += 1
            log.exception("handler for node messages %r raised; message dropped", kind)
