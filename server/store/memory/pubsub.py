"""Messages in one process: delivery is a direct call, and the only node is this one."""

from __future__ import annotations

from server.store.pubsub import NodeHandler
from server.store.records import MessageHandler


class MemoryPubSub:
    def __init__(self) -> None:
        self._handlers: dict[str, MessageHandler] = {}
        self._node_handlers: dict[str, NodeHandler] = {}
        self._node_id: str | None = None

    async def publish(self, topic: str, payload: bytes) -> None:
        handler = self._handlers.get(topic)
        if handler is not None:
            handler(topic, payload)

    async def subscribe(self, topic: str, handler: MessageHandler) -> None:
        self._handlers[topic] = handler

    async def unsubscribe(self, topic: str) -> None:
        self._handlers.pop(topic, None)

    def on_node(self, kind: str, handler: NodeHandler) -> None:
        self._node_handlers[kind] = handler

    async def listen(self, node_id: str) -> None:
        self._node_id = node_id

    async def send(self, node_id: str, kind: str, payload: bytes) -> None:
        if node_id == self._node_id:
            self._deliver(kind, payload)

    async def send_to_user(self, event_id: str, user_id: str, kind: str, payload: bytes) -> int:
        if self._node_id is None:
            return 0
        self._deliver(kind, payload)
        return 1

    def _deliver(self, kind: str, payload: bytes) -> None:
        handler = self._node_handlers.get(kind)
        if handler is not None:
            handler(payload)

    def clear(self) -> None:
        self._handlers.clear()
        self._node_handlers.clear()
