"""Topics: local connections subscribed to a name, bridged across nodes by the store's pub/sub.

A node subscribes to a topic in the store while at least one of its sockets
listens to it, and unsubscribes when the last leaves. A published message is
serialised once, decoded once per receiving node, and its payload encoded once
per codec (see `protocol.Outbound`), however many sockets receive it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable

import orjson

from server.hubs.connection import Connection
from server.metrics import HubMetrics
from server.protocol import Outbound
from server.store.pubsub import PubSub

log = logging.getLogger("proctorhub.hubs.fanout")

Observer = Callable[[str, Outbound], None]


class Fanout:
    def __init__(self, pubsub: PubSub, metrics: HubMetrics) -> None:
        self._pubsub = pubsub
        self._metrics = metrics
        self._local: dict[str, set[Connection]] = defaultdict(set)
        self._observers: list[Observer] = []
        self._subscribed: dict[str, int] = {}
        self._subscriptions = 0

    def observe(self, observer: Observer) -> None:
        """Call `observer(topic, message)` for every message this node receives."""
        self._observers.append(observer)

    def subscription(self, topic: str) -> int | None:
        """An id of this node's current subscription to `topic` (None: not subscribed). It changes when
        the node unsubscribes and subscribes again, so a reader can tell it may have missed messages."""
        return self._subscribed.get(topic)

    def listeners(self, topic: str) -> set[Connection]:
        return self._local.get(topic, set())

    async def join(self, conn: Connection, topic: str) -> None:
        listeners = self._local[topic]
        first = not listeners
        listeners.add(conn)
        conn.topics.add(topic)
        if first:
            self._subscriptions += 1
            self._subscribed[topic] = self._subscriptions
            await self._pubsub.subscribe(topic, self._receive)

    async def leave(self, conn: Connection, topic: str) -> None:
        conn.topics.discard(topic)
        listeners = self._local.get(topic)
        if listeners is None:
            return
        listeners.discard(conn)
        if not listeners:
            del self._local[topic]
            self._subscribed.pop(topic, None)
            await self._pubsub.unsubscribe(topic)

    async def leave_all(self, conn: Connection) -> None:
        for topic in list(conn.topics):
            await self.leave(conn, topic)

    async def publish(self, topic: str, message: Outbound) -> None:
        await self._pubsub.publish(topic, orjson.dumps(message.to_wire()))

    def _receive(self, topic: str, payload: bytes) -> None:
        try:
            message = Outbound.from_wire(orjson.loads(payload))
        except (ValueError, KeyError, TypeError):
            self._metrics.fanout_errors.inc()
            log.warning("undecodable message on topic %s", topic)
            return
        for observer in self._observers:
            observer(topic, message)
        if not message.type.startswith("_"):
            self.deliver(topic, message)

    def deliver(self, topic: str, message: Outbound) -> None:
        """Queue a message on every local socket of a topic.

        A seated candidate's `candidate.status` goes to the admins and to the proctors watching its
        room only: sent to every proctor of a 5,000-candidate event, these writes were most of the hub's
        time. A proctor learns of a candidate moving into its rooms from the `roster` that follows."""
        listeners = self._local.get(topic)
        if not listeners:
            return
        room = message.data.get("room_id") if message.type == "candidate.status" else None
        for conn in list(listeners):
            if room is not None and conn.role == "proctor" and room not in conn.assigned:
                continue
            conn.send(message)
