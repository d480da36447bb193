"""One WebSocket test client for the hub (JSON or msgpack), on the `websockets` library."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from server.auth import mint_session

JSON = "proctorhub.v1.json"
MSGPACK = "proctorhub.v1.msgpack"


def token(secret: str, user: str, role: str = "candidate", event: str = "e1", **kw: Any) -> str:
    return mint_session(secret, user_id=user, event_id=event, role=role, now=kw.pop("now", time.time()), **kw)


@dataclass
class HubClient:
    ws: ClientConnection
    codec: str = JSON
    next_id: int = 1
    inbox: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, msg_type: str, data: dict[str, Any] | None = None, **envelope: Any) -> int:
        msg_id = self.next_id
        self.next_id += 1
        message = {"type": msg_type, "id": msg_id, "data": data or {}, **envelope}
        await self.send_raw(json.dumps(message) if self.codec == JSON else msgpack.packb(message))
        return msg_id

    async def send_raw(self, frame: str | bytes) -> None:
        await self.ws.send(frame)

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        frame = await asyncio.wait_for(self.ws.recv(), timeout)
        message = json.loads(frame) if isinstance(frame, str) else msgpack.unpackb(frame)
        self.inbox.append(message)
        return message

    async def expect(
        self, msg_type: str, where: Callable[[dict[str, Any]], bool] = lambda m: True, timeout: float = 5.0
    ) -> dict[str, Any]:
        """The first message of `msg_type` matching `where`, including ones earlier calls skipped."""
        for i, message in enumerate(self.skipped):
            if message["type"] == msg_type and where(message):
                return self.skipped.pop(i)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(
                    f"no {msg_type} within {timeout}s; got {[m['type'] for m in self.inbox]}"
                )
            message = await self.recv(left)
            if message["type"] == msg_type and where(message):
                return message
            self.skipped.append(message)

    def presences(self, candidate_id: str | None = None) -> list[str]:
        """The presences seen in `candidate.status`, each change once (statuses repeat for other fields)."""
        seen: list[str] = []
        for m in self.inbox:
            mine = m["type"] == "candidate.status" and candidate_id in (None, m["data"]["candidate_id"])
            if mine and (not seen or seen[-1] != m["data"]["presence"]):
                seen.append(m["data"]["presence"])
        return seen

    async def closed_with(self, timeout: float = 5.0) -> int | None:
        """Read until the hub closes; the close code."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self.recv(timeout)
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None

    async def close(self) -> None:
        await self.ws.close()


OPEN_CLIENTS: list[HubClient] = []
"""Every client a test opened; conftest closes them after each test."""


async def open_client(url: str, codec: str = JSON, **kw: Any) -> HubClient:
    ws = await connect(url, subprotocols=[codec], compression=None, max_size=None, **kw)  # type: ignore[list-item]
    client = HubClient(ws, codec)
    OPEN_CLIENTS.append(client)
    return client


async def close_all() -> None:
    while OPEN_CLIENTS:
        client = OPEN_CLIENTS.pop()
        client.ws.transport.resume_reading()
        await client.ws.close()


async def login(
    url: str, tok: str, codec: str = JSON, *, timeout: float = 5.0
) -> tuple[HubClient, dict[str, Any]]:
    """Connect, authenticate; the client and its `hello`."""
    client = await open_client(url, codec)
    await client.send("auth", {"token": tok})
    hello = await client.recv(timeout)
    if hello["type"] != "hello":
        raise AssertionError(f"expected hello, got {hello}")
    return client, hello
