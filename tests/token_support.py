"""A candidate page in miniature for token tests: it applies and acks every token the hub pushes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from websockets.exceptions import ConnectionClosed

from tests.client import HubClient


class TokenHolder:
    """A candidate page in miniature: applies and acks every token the hub pushes."""

    def __init__(self, client: HubClient, first: dict[str, Any] | None = None) -> None:
        self.client = client
        self.tokens: list[dict[str, Any]] = [] if first is None else [{**first, "type": "room.assign"}]
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._apply_all()

    async def _apply_all(self) -> None:
        while True:
            message = await self.client.recv(timeout=3600)
            if message["type"] in ("room.assign", "token.refresh"):
                self.tokens.append({**message["data"], "received": time.time(), "type": message["type"]})
                await self.client.send("ack", {"id": message["id"]})

    @property
    def current(self) -> dict[str, Any]:
        return self.tokens[-1]

    def stop(self) -> None:
        self.task.cancel()
