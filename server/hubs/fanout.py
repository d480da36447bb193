"""Topics: local connections listening to a name, bridged across nodes by the store's pub/sub.

Two routes, by topic (server/topics.py):

- event-wide topics (`watch:`, `admins:`): a node subscribes in the store while at least one of its
  sockets listens, or something on the node holds the topic (`retain`: the event's allocation writer
  follows its users' announcements), and unsubscribes when the last one leaves;
- user topics (`user:{event}:{user}`): no subscription at all. A message goes on the node channel of
  every node that holds a socket of the user (the store knows them), and each node hands it to its
  own sockets of that user. So a node has one channel for all its users, not one per socket.

A published message is serialised once, decoded once per receiving node, and its payload encoded
once per codec (see `protocol.Outbound`), however many sockets receive it.
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
from server.topics import user_of

log = logging.getLogger("proctorhub.hubs.fanout")

Observer = Callable[[str, Outbound], None]
KIND = "topic"
"""The node-channel messages the fan-out takes: a user topic and its message."""


class Fanout:
    def __init__(self, pubsub: PubSub, metrics: HubMetrics) -> None:
        self._pubsub = pubsub
        self._metrics = metrics
        self._local: dict[str, set[Connection]] = defaultdict(set)
        self._retained: dict[str, int] = defaultdict(int)
        self._observers: list[Observer] = []
        self._subscribed: dict[str, int] = {}
        self._subscriptions = 0
        pubsub.on_node(KIND, self._receive_node)
        # Redis counts the publishes it never took (nobody waits for them); the memory store has none.
        metrics.publish_failures.set_function(lambda: getattr(pubsub, "publish_errors", 0))

    async def start(self, node_id: str) -> None:
        """Read this node's channel: the messages to users who have sockets here."""
        await self._pubsub.listen(node_id)

    def observe(self, observer: Observer) -> None:
        """Call `observer(topic, message)` for every message this node receives."""
        self._observers.append(observer)

    def subscription(self, topic: str) -> int | None:
        """An id of this node's current subscription to `topic` (None: not subscribed). It changes when
        the node unsubscribes and subscribes again, so a reader can tell it may have missed messages."""
        return self._subscribed.get(topic)

    @property
    def subscriptions(self) -> int:
        """Store subscriptions this node holds now (the user topics need none)."""
        return len(self._subscribed)

    def listeners(self, topic: str) -> set[Connection]:
        return self._local.get(topic, set())

    async def join(self, conn: Connection, topic: str) -> None:
        listeners = self._local[topic]
        first = not listeners
        listeners.add(conn)
        conn.topics.add(topic)
        if first and user_of(topic) is None:
            await self._subscribe(topic)

    async def leave(self, conn: Connection, topic: str) -> None:
        conn.topics.discard(topic)
        listeners = self._local.get(topic)
        if listeners is None:
            return
        listeners.discard(conn)
        if not listeners:
            del self._local[topic]
            await self._unsubscribe(topic)

    async def leave_all(self, conn: Connection) -> None:
        for topic in list(conn.topics):
            await self.leave(conn, topic)

    async def retain(self, topic: str) -> None:
        """Stay subscribed to an event-wide topic without a socket (until `release`)."""
        self._retained[topic] += 1
        await self._subscribe(topic)

    async def release(self, topic: str) -> None:
        self._retained[topic] -= 1
        if self._retained[topic] <= 0:
            del self._retained[topic]
            await self._unsubscribe(topic)

    async def _subscribe(self, topic: str) -> None:
        if topic in self._subscribed:
            return
        self._subscriptions += 1
        self._subscribed[topic] = self._subscriptions
        await self._pubsub.subscribe(topic, self._receive)

    async def _unsubscribe(self, topic: str) -> None:
        if topic in self._local or self._retained.get(topic, 0) > 0 or topic not in self._subscribed:
            return
        del self._subscribed[topic]
        await self._pubsub.unsubscribe(topic)

    async def publish(self, topic: str, message: Outbound) -> None:
        target = user_of(topic)
        if target is None:
            await self._pubsub.publish(topic, orjson.dumps(message.to_wire()))
        else:
            payload = orjson.dumps({"topic": topic, "message": message.to_wire()})
            await self._pubsub.send_to_user(*target, KIND, payload)

    def _receive_node(self, payload: bytes) -> None:
        try:
            raw = orjson.loads(payload)
            topic, message = str(raw["topic"]), Outbound.from_wire(raw["message"])
        except (ValueError, KeyError, TypeError):
            self._metrics.fanout_errors.inc()
            log.warning("undecodable message on this node's channel")
            return
        self._dispatch(topic, message)

    def _receive(self, topic: str, payload: bytes) -> None:
        try:
            message = Outbound.from_wire(orjson.loads(payload))
        except (ValueError, KeyError, TypeError):
            self._metrics.fanout_errors.inc()
            log.warning("undecodable message on topic %s", topic)
            return
        self._dispatch(topic, message)

    def _dispatch(self, topic: str, message: Outbound) -> None:
        for observer in self._observers:
            observer(topic, message)
        if not message.type.startswith("_"):
            self.deliver(topic, message)

    def deliver(self, topic: str, message: Outbound) -> None:
        """Queue a message on every local socket of a topic.

        A `candidate.status` goes to the admins, to the proctors watching the candidate's room, and,
        while the candidate has no room, to the proctors that were shown it (`Connection.shown`): sent
        to every proctor of a 5,000-candidate event, these writes were most of the hub's time, and
        every arrival is announced once before its seat. A proctor learns of a candidate moving into
        its rooms from the `roster` that follows."""
        listeners = self._local.get(topic)
        if not listeners:
            return
        if message.type != "candidate.status":
            for conn in list(listeners):
                conn.send(message)
            return
        room, candidate = message.data.get("room_id"), message.data.get("candidate_id")
        for conn in list(listeners):
            if conn.role == "proctor" and not _shows(conn, room, candidate):
                continue
            conn.send(message)


def _shows(proctor: Connection, room: object, candidate: object) -> bool:
    """Whether a proctor's socket gets a candidate's status, keeping its `shown` set current."""
    if room is None:
        return candidate in proctor.shown
    if room in proctor.assigned:
        proctor.shown.add(str(candidate))
        return True
    proctor.shown.discard(str(candidate))
    return False
