"""The join gate: bounded joins at once, the rest in arrival order, refused 1013 at the deadline."""

from __future__ import annotations

import asyncio

import pytest

from server.errors import TryLater
from server.hubs.admission import JoinGate


async def _hold(gate: JoinGate, order: list[int], n: int, release: asyncio.Event) -> None:
    async with gate.admit():
        order.append(n)
        await release.wait()


async def test_at_most_n_run_and_the_rest_follow_in_arrival_order() -> None:
    gate = JoinGate(2, deadline_s=60)
    order: list[int] = []
    release = asyncio.Event()
    tasks = [asyncio.create_task(_hold(gate, order, n, release)) for n in range(5)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert (order, gate.running, gate.waiting) == ([0, 1], 2, 3)
    release.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert (gate.running, gate.waiting) == (0, 0)


async def test_a_join_still_waiting_at_the_deadline_is_refused_try_later() -> None:
    refused: list[int] = []
    gate = JoinGate(1, deadline_s=0.05, on_refused=lambda: refused.append(1))
    release = asyncio.Event()
    holder = asyncio.create_task(_hold(gate, [], 0, release))
    await asyncio.sleep(0)
    with pytest.raises(TryLater) as caught:
        async with gate.admit():
            raise AssertionError("admitted past a full gate")
    assert caught.value.code == 1013
    assert refused == [1] and gate.waiting == 0
    release.set()
    await holder
    async with gate.admit():  # the refused waiter took no slot with it
        assert gate.running == 1


async def test_a_failing_join_gives_its_slot_back() -> None:
    gate = JoinGate(1, deadline_s=60)
    with pytest.raises(RuntimeError):
        async with gate.admit():
            raise RuntimeError("the store failed")
    async with gate.admit():
        assert gate.running == 1
    assert gate.running == 0
