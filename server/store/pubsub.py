"""Messages between nodes.

Two ways, chosen by who needs a message:

- topics (`publish`/`subscribe`): the event-wide topics of server/topics.py. A node subscribes once per
  topic it has listeners for, however many of its sockets listen.
- node channels (`send`, `send_to_user`): one channel per node, which it reads from start to stop
  (`listen`). A message to one user goes to the channel of each node that holds one of the user's
  sockets (the store knows them: presence), so no node subscribes per socket. Each message carries a
  `kind` naming who on the node takes it (`on_node`): the fan-out, the allocation's requests, ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from server.store.records import MessageHandler

NodeHandler = Callable[[bytes], None]
"""Called with the payload of every node-channel message of its kind."""


class PubSub(Protocol):
    async def publish(self, topic: str, payload: bytes) -> None: ...
    async def subscribe(self, topic: str, handler: MessageHandler) -> None: ...
    async def unsubscribe(self, topic: str) -> None: ...

    def on_node(self, kind: str, handler: NodeHandler) -> None:
        """Take this node's channel messages of `kind` (before or after `listen`)."""

    async def listen(self, node_id: str) -> None:
        """Start reading this node's channel."""

    async def send(self, node_id: str, kind: str, payload: bytes) -> None:
        """To one node (this one included)."""

    async def send_to_user(self, event_id: str, user_id: str, kind: str, payload: bytes) -> int:
        """To every node that holds a socket of the user; how many nodes that was."""
