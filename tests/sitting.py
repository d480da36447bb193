"""Simulated exam sittings for the recording tests: candidates on the hub and the simulator's media
plane, proctors and an admin that log every alert they receive with the time they received it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed

from tests.client import HubClient, login, token
from tests.conftest import API_KEY, SECRET
from tests.polling import eventually
from tests.servers import HubProcess


@dataclass
class Received:
    at: float
    data: dict[str, Any]


@dataclass
class Watcher:
    """A proctor or admin socket read to its end: alerts and room assignments, with receive times."""

    client: HubClient
    alerts: list[Received] = field(default_factory=list)
    rooms: set[str] = field(default_factory=set)
    task: asyncio.Task[None] | None = None

    def start(self) -> Watcher:
        self.task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        with contextlib.suppress(ConnectionClosed, asyncio.CancelledError):
            while True:
                message = await self.client.recv(timeout=3600)
                if message["type"] == "alert":
                    self.alerts.append(Received(time.time(), message["data"]))
                elif message["type"] == "room.assign":
                    await self.client.send("ack", {"id": message["id"]})
                    self.rooms = {r["room_id"] for r in message["data"].get("rooms", [])}

    def opened(self, kind: str) -> dict[str, Received]:
        """candidate -> the first `open` alert of `kind` it got."""
        return self._first(kind, "open")

    def closed(self, kind: str) -> dict[str, Received]:
        """candidate -> the first `closed` alert of `kind` it got."""
        return self._first(kind, "closed")

    def _first(self, kind: str, state: str) -> dict[str, Received]:
        out: dict[str, Received] = {}
        for r in self.alerts:
            if r.data["kind"] == kind and r.data["state"] == state:
                out.setdefault(r.data["candidate_id"], r)
        return out

    async def stop(self) -> None:
        """Cancel the reader until it has ended: a cancellation can be lost in the race with a
        frame arriving at the same moment (Python 3.11's wait_for), so one is not enough."""
        while self.task is not None and not self.task.done():
            self.task.cancel()
            await asyncio.wait({self.task}, timeout=1)


async def watcher(hub: HubProcess, user: str, role: str, event: str) -> Watcher:
    client, _ = await login(hub.ws, token(SECRET, user, role, event), timeout=30)
    return Watcher(client).start()


@dataclass
class Candidate:
    """A candidate's page: its hub socket and its peer in the simulator's media plane."""

    user_id: str
    client: HubClient
    room_id: str
    peer_id: str
    media: httpx.AsyncClient
    hms_token: str
    camera_off_at: float | None = None

    async def report(self, *, joined: bool, video: bool) -> None:
        data = {
            "peer_id": self.peer_id,
            "room_id": self.room_id,
            "joined": joined,
            "video": video,
            "audio": True,
        }
        await self.client.send("media.status", data)

    async def camera(self, on: bool) -> None:
        """The camera is lost (or back): 100ms stops getting video, the page says so to the hub."""
        response = await self.media.post(
            f"/hms-sim/media/peers/{self.peer_id}/publish", json={"video": on, "audio": True}
        )
        response.raise_for_status()
        if not on:
            self.camera_off_at = time.time()
        await self.report(joined=True, video=on)

    async def finish_media(self) -> None:
        """The page leaves the 100ms room."""
        response = await self.media.post(f"/hms-sim/media/peers/{self.peer_id}/leave")
        response.raise_for_status()
        await self.report(joined=False, video=False)

    async def join_again(self) -> Candidate:
        """The page joins the room again with its newest token: a new peer (contract §1.5)."""
        return await _join(self.user_id, self.client, self.room_id, self.hms_token, self.media)

    async def finish(self) -> None:
        await self.client.send("finish", {})
        await asyncio.sleep(0.05)
        await self.finish_media()


async def sit(hub: HubProcess, event: str, user_id: str, media: httpx.AsyncClient) -> Candidate:
    """Log in, take the pushed room and token, join the media plane with it and publish video."""
    client, _ = await login(
        hub.ws, token(SECRET, user_id, "candidate", event, name=f"Candidate {user_id}"), timeout=60
    )
    assign = await client.expect("room.assign", timeout=60)
    await client.send("ack", {"id": assign["id"]})
    data = assign["data"]
    return await _join(user_id, client, data["room_id"], data["hms_token"], media)


async def _join(
    user_id: str, client: HubClient, room_id: str, hms_token: str, media: httpx.AsyncClient
) -> Candidate:
    joined = await media.post("/hms-sim/media/join", json={"token": hms_token, "user_name": user_id})
    joined.raise_for_status()
    candidate = Candidate(user_id, client, room_id, joined.json()["peer_id"], media, hms_token)
    published = await media.post(
        f"/hms-sim/media/peers/{candidate.peer_id}/publish", json={"video": True, "audio": True}
    )
    published.raise_for_status()
    await candidate.report(joined=True, video=True)
    return candidate


async def video_flowing(media: httpx.AsyncClient, event: str, candidate: Candidate) -> None:
    """Wait until the hub's timeline has the candidate's video flowing (the page and 100ms agreed).

    A test about what follows video must start from video: a loaded hub can read the page's report
    after a 100ms leave sent a few milliseconds later, and then the sitting never had any."""
    path = f"/api/v1/events/{event}/candidates/{candidate.user_id}/timeline"
    auth = {"Authorization": f"Bearer {API_KEY}"}

    async def flowing() -> bool:
        return bool((await media.get(path, headers=auth)).json()["intervals"]["video"])

    await eventually(flowing, what=f"video flowing for {candidate.user_id}")


async def add_fault(media: httpx.AsyncClient, **rule: Any) -> None:
    response = await media.post("/hms-sim/_sim/faults", json=rule)
    response.raise_for_status()
