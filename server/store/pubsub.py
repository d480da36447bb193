"""Messages between nodes: a payload published on a topic reaches every node subscribed to it."""

from __future__ import annotations

from typing import Protocol

from server.store.records import MessageHandler


class PubSub(Protocol):
    async def publish(self, topic: str, payload: bytes) -> None: ...
    async def subscribe(self, topic: str, handler: MessageHandler) -> None: ...
    async def unsubscribe(self, topic: str) -> None: ...
