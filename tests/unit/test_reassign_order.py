"""Pushes of an allocation change reach a socket in the order of what they read: the last one a socket
gets says the allocation as it is now, however long each read took."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from server.auth import Session
from server.hubs.connection import Connection
from server.hubs.fanout import Fanout
from server.hubs.seating import Seating
from server.hubs.timers import TimerLoop
from server.metrics import HubMetrics
from server.protocol import Codec, Outbound
from server.store.memory import MemoryStore
from tests.polling import eventually


class SlowReads:
    """The assigner's part `reassign` uses: reads the proctor's rooms at once, then answers with what it
    read (its rooms, and a roster with c1 online); the first read takes until the test lets it go (its
    tokens and roster were slow to come)."""

    def __init__(self) -> None:
        self.rooms = ["r1"]
        self.reads = 0
        self.slow = asyncio.Event()

    async def proctor(self, conn: Connection, *, reason: str, always: bool = False) -> list[Outbound]:
        read = list(self.rooms)
        self.reads += 1
        if self.reads == 1:
            await self.slow.wait()
        assign = Outbound("room.assign", {"rooms": [{"room_id": r} for r in read], "reason": reason})
        roster = [{"candidate_id": "c1", "room_id": "r1", "presence": "online"}]
        return [assign, Outbound("roster", {"candidates": roster})]


def proctor_socket(reads: SlowReads) -> tuple[Seating, Connection, list[dict[str, Any]]]:
    """A seating whose assigner is `reads`, and a synced proctor socket recording the frames it sends."""
    frames: list[dict[str, Any]] = []

    async def socket(message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send":
            frames.append(orjson.loads(message["text"]))

    seating = Seating(
        fanout=Fanout(MemoryStore().pubsub, HubMetrics()),
        rooms=None,  # type: ignore[arg-type]  (reassign asks the assigner only)
        assigner=reads,  # type: ignore[arg-type]
        announce=lambda record: asyncio.sleep(0),
        current=lambda event_id, user_id: asyncio.sleep(0, None),
        timers=TimerLoop(lambda: 0.0),
        clock=lambda: 0.0,
        spawn=lambda coro, name: None,
        metrics=HubMetrics(),
    )
    conn = Connection("n/1", socket, Codec.JSON, queue_size=16, send_timeout_s=5, on_overflow=lambda c: None)
    conn.open(Session(user_id="p1", event_id="e1", role="proctor", exp=2e9, iat=1e9))  # type: ignore[arg-type]
    conn.synced = True
    return seating, conn, frames


async def test_a_slow_read_of_an_old_allocation_is_not_the_last_word() -> None:
    reads = SlowReads()
    seating, conn, frames = proctor_socket(reads)
    first = asyncio.ensure_future(seating.reassign(conn))  # a pass gave p1 room r1; this read is slow
    await eventually(lambda: reads.reads == 1, interval=0)
    reads.rooms = ["r1", "r2"]  # the next pass gives it r2 as well, and that read answers at once
    await seating.reassign(conn)
    reads.slow.set()
    await first
    assigns = [[r["room_id"] for r in f["data"]["rooms"]] for f in frames if f["type"] == "room.assign"]
    assert assigns and assigns[-1] == ["r1", "r2"], f"pushed in this order: {assigns}"


async def test_a_status_that_changes_while_the_roster_is_read_comes_after_it() -> None:
    reads = SlowReads()
    seating, conn, frames = proctor_socket(reads)
    push = asyncio.ensure_future(seating.reassign(conn))
    await eventually(lambda: reads.reads == 1, interval=0)
    # c1 goes reconnecting after the roster was read, and its status reaches the socket before the read
    # is answered: sent at once, the older roster would follow it and show c1 online.
    status = {"candidate_id": "c1", "room_id": "r1", "presence": "reconnecting"}
    conn.send(Outbound("candidate.status", status, coalesce_key="cs:c1"))
    conn.send(Outbound("warning", {"from": "a1", "text": "not part of any roster"}))
    reads.slow.set()
    await push
    assert [f["type"] for f in frames] == ["room.assign", "roster", "candidate.status", "warning"]
    assert frames[2]["data"] == status
    # The push is over: live messages go out at once again.
    conn.send(Outbound("candidate.status", {**status, "presence": "online"}, coalesce_key="cs:c1"))
    await eventually(lambda: len(frames) == 5, interval=0)


async def test_a_failed_read_still_sends_what_waited() -> None:
    class Failing(SlowReads):
        async def proctor(self, conn: Connection, *, reason: str, always: bool = False) -> list[Outbound]:
            await self.slow.wait()
            raise ConnectionError("store gone")

    reads = Failing()
    seating, conn, frames = proctor_socket(reads)
    push = asyncio.ensure_future(seating.reassign(conn))
    await asyncio.sleep(0)
    conn.send(Outbound("warning", {"from": "a1", "text": "still delivered"}))
    reads.slow.set()
    with pytest.raises(ConnectionError):
        await push
    assert [f["type"] for f in frames] == ["warning"]
