"""Messages between nodes on Redis pub/sub: one shared subscriber connection, read by one task.

A topic `t` is the channel `ph:topic:t`; node `n`'s own channel is `ph:node:n`, and its messages are
`kind` + a newline + the payload. A lost connection is retried with backoff (redis-py subscribes
again); `epoch` counts such losses, so a reader that keeps state from messages knows it may have
missed some. A handler that raises is logged and counted, and the reader goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from server.store.pubsub import NodeHandler
from server.store.records import MessageHandler
from server.store.redis.batching import BatchingRedis
from server.store.redis.connection import P, script, tail

log = logging.getLogger("proctorhub.store.redis")

TOPIC = f"{P}topic:"
NODE = f"{P}node:"
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 5.0
READ_TIMEOUT_S = 5.0


class RedisPubSub:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._pubsub: PubSub = client.pubsub()
        self._lock = asyncio.Lock()
        self._handlers: dict[str, MessageHandler] = {}
        self._reader: asyncio.Task[None] | None = None
        self._node_handlers: dict[str, NodeHandler] = {}
        self._node_channel: str | None = None
        self._to_user = script(client, "send_to_user")
        self.epoch = 0
        """Read failures so far: a change means messages may have been lost in between."""
        self.handler_errors = 0
        """Messages whose handler raised (logged, then dropped)."""
        self.read_errors = 0
        """Pub/sub read failures the reader recovered from."""
        self.publish_errors = 0
        """PUBLISHes Redis did not take (logged at the 1st, 10th, 100th...)."""

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        self._handlers.clear()
        await self._pubsub.aclose()

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
        """One shared pub/sub connection; the reader task starts with the first topic."""
        async with self._lock:
            await self._pubsub.subscribe(f"{TOPIC}{topic}")
            self._handlers[topic] = handler
            self._start_reader()

    def _start_reader(self) -> None:
        if self._reader is None:
            self._reader = asyncio.create_task(self._read(), name="proctorhub-redis-pubsub")

    def on_node(self, kind: str, handler: NodeHandler) -> None:
        self._node_handlers[kind] = handler

    async def listen(self, node_id: str) -> None:
        async with self._lock:
            self._node_channel = f"{NODE}{node_id}"
            await self._pubsub.subscribe(self._node_channel)
            self._start_reader()

    async def send(self, node_id: str, kind: str, payload: bytes) -> None:
        await self._post(f"{NODE}{node_id}", kind.encode() + b"\n" + payload)

    async def send_to_user(self, event_id: str, user_id: str, kind: str, payload: bytes) -> int:
        args = [NODE, kind.encode() + b"\n" + payload]
        return int(await self._to_user(keys=[f"{P}conns:{tail(event_id, user_id)}"], args=args))

    async def unsubscribe(self, topic: str) -> None:
        async with self._lock:
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
                self.epoch += 1
                log.warning("redis pub/sub read failed (%r); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            backoff = BACKOFF_MIN_S
            if message is not None and message["type"] == "message":
                self._dispatch(message["channel"], message["data"])

    def _dispatch(self, channel: bytes, payload: bytes) -> None:
        if self._node_channel is not None and channel == self._node_channel.encode():
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
