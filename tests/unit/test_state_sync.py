"""StateSync: the documented order of messages; independent providers read from the start."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server.hubs.state_sync import StateProvider, StateSync
from server.protocol import Outbound

CONN: Any = object()  # the providers here never look at the connection


async def test_an_independent_provider_reads_alongside_and_keeps_its_place() -> None:
    """`room.assign` goes first although it waits for something only the backfill provider does: read
    after it, the sync would never end."""
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
    sync.add("backfill", backfill, independent=True)
    messages = await asyncio.wait_for(sync.messages(CONN), 5)
    expected = ["room.assign", "event.stats", "backfill.request", "backfill.release"]
    assert [m.type for m in messages] == expected


async def test_a_provider_that_is_not_independent_reads_after_the_ones_before_it() -> None:
    """A proctor's alerts are read for the rooms its `room.assign` pass gave it."""
    rooms_given: list[str] = []

    async def stats(_conn: Any) -> list[Outbound]:
        return []

    async def rooms(_conn: Any) -> list[Outbound]:
        await asyncio.sleep(0.01)
        rooms_given.append("r1")
        return [Outbound("room.assign", {})]

    async def alerts(_conn: Any) -> list[Outbound]:
        return [Outbound("alert", {"room_id": r}) for r in rooms_given]

    sync = StateSync(stats)
    sync.add("room.assign", rooms, before="event.stats")
    sync.add("alerts", alerts)
    messages = await asyncio.wait_for(sync.messages(CONN), 5)
    assert [(m.type, m.data) for m in messages] == [("room.assign", {}), ("alert", {"room_id": "r1"})]


async def _no_stats(_conn: Any) -> list[Outbound]:
    return []


def _waits_until_cancelled(name: str, stopped: list[str]) -> StateProvider:
    async def provider(_conn: Any) -> list[Outbound]:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            stopped.append(name)
            raise
        return []

    return provider


def _fails(message: str) -> StateProvider:
    async def provider(_conn: Any) -> list[Outbound]:
        await asyncio.sleep(0)
        raise LookupError(message)

    return provider


@pytest.mark.parametrize(("failing", "waiting"), [("room.assign", "backfill"), ("backfill", "room.assign")])
async def test_a_failing_provider_fails_the_sync_at_once_with_its_own_error_and_stops_the_other(
    failing: str, waiting: str
) -> None:
    """Ordered (`room.assign`) or independent (`backfill`): the provider's own error, raised without
    waiting for the other provider, which is stopped."""
    stopped: list[str] = []
    providers = {failing: _fails(f"{failing} unreadable"), waiting: _waits_until_cancelled(waiting, stopped)}
    sync = StateSync(_no_stats)
    sync.add("room.assign", providers["room.assign"], before="event.stats")
    sync.add("backfill", providers["backfill"], independent=True)
    with pytest.raises(LookupError, match=f"{failing} unreadable"):
        await asyncio.wait_for(sync.messages(CONN), 5)
    assert stopped == [waiting]


async def test_a_second_failure_beside_the_raised_one_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Two independent providers fail in the same turn: one error is raised, the other logged."""
    sync = StateSync(_no_stats)
    sync.add("alerts", _fails("alerts unreadable"), independent=True)
    sync.add("backfill", _fails("backfill unreadable"), independent=True)
    with (
        caplog.at_level("WARNING", logger="proctorhub.hubs.state_sync"),
        pytest.raises(LookupError) as raised,
    ):
        await asyncio.wait_for(sync.messages(CONN), 5)
    logged = [r.getMessage() for r in caplog.records if r.name == "proctorhub.hubs.state_sync"]
    other = ({"alerts unreadable", "backfill unreadable"} - {str(raised.value)}).pop()
    assert len(logged) == 1 and other in logged[0]


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
    sync.add("backfill", lambda _conn: waits("backfill"), independent=True)
    task = asyncio.ensure_future(sync.messages(CONN))
    await started.wait()
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(stopped) == ["backfill", "stats"]
