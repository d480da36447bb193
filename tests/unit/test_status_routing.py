"""Who gets a `candidate.status`: admins always; a proctor when the candidate sits in one of its rooms,
or, while the candidate has no room, when it was shown the candidate (a roster, a status of its rooms)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from server.auth import Session
from server.hubs.connection import Connection
from server.hubs.fanout import Fanout
from server.metrics import HubMetrics
from server.protocol import Codec, Outbound
from server.store.memory import MemoryStore
from server.topics import watch_topic

EV = "ev"


class Socket:
    """A watcher's socket on the fan-out; the candidate statuses it was sent, as (candidate, room)."""

    def __init__(self, user: str, role: str, rooms: set[str] | None = None) -> None:
        self.frames: list[dict[str, Any]] = []
        self.conn = Connection(
            f"n/{user}", self._send, Codec.JSON, queue_size=64, send_timeout_s=1, on_overflow=lambda c: None
        )
        self.conn.open(Session(user_id=user, event_id=EV, role=role, exp=1e12, iat=0))  # type: ignore[arg-type]
        self.conn.assigned = frozenset(rooms or ())

    async def _send(self, message: dict[str, Any]) -> None:
        self.frames.append(orjson.loads(message.get("text") or message["bytes"]))

    async def got(self) -> list[tuple[str, str | None]]:
        for _ in range(20):  # let the socket's writer drain its queue
            await asyncio.sleep(0)
        seen = [(f["data"]["candidate_id"], f["data"]["room_id"]) for f in self.frames]
        self.frames.clear()
        return seen


def _status(candidate: str, room: str | None) -> Outbound:
    return Outbound("candidate.status", {"candidate_id": candidate, "room_id": room, "presence": "online"})


async def test_an_unseated_candidate_reaches_the_admins_and_the_proctors_that_were_shown_it() -> None:
    fanout = Fanout(MemoryStore().pubsub, HubMetrics())
    admin, p1, p2 = Socket("a", "admin"), Socket("p1", "proctor", {"r1"}), Socket("p2", "proctor", {"r2"})
    topic = watch_topic(EV)
    for socket in (admin, p1, p2):
        await fanout.join(socket.conn, topic)

    async def deliver(candidate: str, room: str | None) -> list[list[tuple[str, str | None]]]:
        fanout.deliver(topic, _status(candidate, room))
        return [await admin.got(), await p1.got(), await p2.got()]

    # An arrival, announced before its seat: no proctor has seen c1 yet.
    assert await deliver("c1", None) == [[("c1", None)], [], []]
    # Seated in r1: p1 watches it, and from now on hears of it even without a room (its finish, say).
    assert await deliver("c1", "r1") == [[("c1", "r1")], [("c1", "r1")], []]
    assert await deliver("c1", None) == [[("c1", None)], [("c1", None)], []]
    # Moved to r2: p2's now; p1 no longer hears of it.
    assert await deliver("c1", "r2") == [[("c1", "r2")], [], [("c1", "r2")]]
    assert await deliver("c1", None) == [[("c1", None)], [], [("c1", None)]]
    # A roster shows p1 the candidates it lists (Assigner.proctor sets `shown` with it).
    p1.conn.shown = {"c2"}
    assert await deliver("c2", None) == [[("c2", None)], [("c2", None)], []]
    # Other messages go to every socket of the topic, as before.
    fanout.deliver(topic, Outbound("flag.added", {"candidate_id": "c3", "room_id": None}))
    assert [await admin.got(), await p1.got(), await p2.got()] == [[("c3", None)]] * 3
