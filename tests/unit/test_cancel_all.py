"""cancel_all: tasks that swallow a cancellation are cancelled again; one that never ends is left behind."""

from __future__ import annotations

import asyncio

from server.background import cancel_all


async def _swallows(times: int, give_in: asyncio.Event) -> None:
    """Like a client library's read that turns a cancellation into waiting again: `times` times, or
    until `give_in` is set."""
    swallowed = 0
    while True:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            swallowed += 1
            if swallowed > times or give_in.is_set():
                raise


async def test_a_task_that_swallows_one_cancellation_still_ends() -> None:
    task = asyncio.create_task(_swallows(1, asyncio.Event()))
    await asyncio.sleep(0)
    assert await cancel_all({task}, give_up_s=5) == set()
    assert task.cancelled()


async def test_a_task_that_never_ends_is_left_behind_within_the_bound() -> None:
    give_in = asyncio.Event()
    task = asyncio.create_task(_swallows(10**9, give_in))
    await asyncio.sleep(0)
    started = asyncio.get_running_loop().time()
    assert await cancel_all({task}, give_up_s=0.3) == {task}
    assert asyncio.get_running_loop().time() - started < 5 and not task.done()
    give_in.set()
    assert await cancel_all({task}, give_up_s=5) == set()
