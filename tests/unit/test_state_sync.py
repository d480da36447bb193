"""StateSync: the providers read at the same time, their messages keep the documented order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server.hubs.state_sync import StateSync
from server.protocol import Outbound

CONN: Any = object()  # the providers here never look at the connection


async def test_providers_wait_at_the_same_time_and_keep_their_order() -> None:
    """`room.assign` goes first although it waits for something only a later provider does: one after
    the other, the sync would never end."""
    assigned: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def stats(_conn: Any) -> list[Outbound]:
        return [Outbound("event.stats", {})]

    async def rooms(_conn: Any) -> list[Outbound]:
        await assigned
        return [Outbound("room.assign", {})]

    async def backfill(_conn: Any) -> list[Outbound]:
        assigned.set_result(None)
        await asyncio.sleep(0)
        return [Outbound("backfill.request", {}), Outbound("backfill.release", {})]

    sync = StateSync(stats)
    sync.add("room.assign", rooms, before="event.stats")
    sync.add("backfill", backfill)
    messages = await asyncio.wait_for(sync.messages(CONN), 5)
    assert [m.type for m in messages] == [
        "room.assign",
        "event.stats",
        "backfill.request",
        "backfill.release",
    ]


async def test_a_failing_provider_fails_the_sync_with_its_own_error_and_stops_the_others() -> None:
    stopped: list[str] = []

    async def stats(_conn: Any) -> list[Outbound]:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            stopped.append("stats")
            raise
        return []

    async def rooms(_conn: Any) -> list[Outbound]:
        await asyncio.sleep(0)
        raise LookupError("no room")

    sync = StateSync(stats)
    sync.add("room.assign", rooms, before="event.stats")
    with pytest.raises(LookupError, match="no room"):
        await asyncio.wait_for(sync.messages(CONN), 5)
    assert stopped == ["stats"]


async def test_a_cancelled_sync_leaves_no_provider_running() -> None:
    started = asyncio.Event()
    stopped: list[str] = []

    async def waits(name: str) -> list[Outbound]:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            stopped.append(name)
            raise
        return []

    sync = StateSync(lambda _conn: waits("stats"))
    sync.add("room.assign", lambda _conn: waits("rooms"), before="event.stats")
    task = asyncio.ensure_future(sync.messages(CONN))
    await started.wait()
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(stopped) == ["rooms", "stats"]
