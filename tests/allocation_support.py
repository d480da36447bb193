"""Reading the allocation of a real hub, and clients that follow their room.assign (allocation tests)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed

from tests.client import HubClient
from tests.conftest import API_KEY
from tests.servers import HubProcess

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def allocation(hub: HubProcess, event_id: str) -> dict[str, Any]:
    response = httpx.get(f"{hub.http}/api/v1/events/{event_id}/rooms", headers=AUTH, timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def seats(alloc: dict[str, Any]) -> dict[str, str]:
    return {c: r["room_id"] for r in alloc["rooms"] for c in r["candidates"]}


class Listener:
    """Reads a socket to its end, acking pushes; keeps the last room.assign and roster."""

    def __init__(self, client: HubClient) -> None:
        self.client = client
        self.last_assign: dict[str, Any] | None = None
        self.roster: list[dict[str, Any]] | None = None
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                message = await self.client.recv(timeout=3600)
                if message["type"] == "room.assign":
                    self.last_assign = message["data"]
                    await self.client.send("ack", {"id": message["id"]})
                elif message["type"] == "roster":
                    self.roster = message["data"]["candidates"]

    def rooms(self) -> set[str]:
        data = self.last_assign or {}
        if "rooms" in data:
            return {r["room_id"] for r in data["rooms"]}
        return {data["room_id"]} if "room_id" in data else set()
