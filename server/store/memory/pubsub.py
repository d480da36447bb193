"""Messages in one process: delivery is a direct call."""

from __future__ import annotations

from server.store.records import MessageHandler


class MemoryPubSub:
    def __init__(self) -> None:
        self._handlers: dict[str, MessageHandler] = {}

    async def publish(self, topic: str, payload: bytes) -> None:
        handler = self._handlers.get(topic)
        if handler is not None:
            handler(topic, payload)

    async def subscribe(self, topic: str, handler: MessageHandler) -> None:
        self._handlers[topic] = handler

    async def unsubscribe(self, topic: str) -> None:
        self._handlers.pop(topic, None)

    def clear(self) -> None:
        self._handlers.clear()
