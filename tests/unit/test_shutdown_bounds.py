"""What bounds a node's shutdown: `stop_all` abandons a step that will not stop (even one that swallows
its cancellation) and goes on with the next; `ExitDeadline` ends the process when everything after the
steps overruns HUB_SHUTDOWN_S. Real tasks and a real timer thread; the exit is the only stand-in."""

from __future__ import annotations

import asyncio
import threading

from server.app import stop_all
from server.serve import OVERRAN_EXIT_CODE, ExitDeadline


async def test_a_step_that_swallows_its_cancellation_is_left_behind() -> None:
    ran: list[str] = []
    release = asyncio.Event()

    async def stubborn() -> None:
        ran.append("stubborn")
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:  # what redis-py does: its own error, or nothing
                continue

    async def after() -> None:
        ran.append("after")

    async def broken() -> None:
        raise RuntimeError("no")

    # the test's own bound is a generous one: without the fix, stop_all never returns
    await asyncio.wait_for(
        stop_all(1.0, ("stubborn", stubborn), ("broken", broken), ("after", after)), timeout=30
    )
    assert ran == ["stubborn", "after"]
    release.set()
    await asyncio.sleep(0)


async def test_steps_that_finish_all_run_in_order() -> None:
    ran: list[int] = []

    def step(n: int):  # type: ignore[no-untyped-def]
        async def run() -> None:
            await asyncio.sleep(0)
            ran.append(n)

        return run

    await stop_all(5.0, *((f"step {n}", step(n)) for n in range(5)))
    assert ran == list(range(5))


def test_the_deadline_exits_a_process_that_overruns() -> None:
    exited: list[int] = []
    called = threading.Event()

    def exit(code: int) -> None:
        exited.append(code)
        called.set()

    deadline = ExitDeadline(0.05, exit=exit)
    deadline.arm()
    deadline.arm()  # a second signal does not start a second timer
    assert called.wait(30)
    assert exited == [OVERRAN_EXIT_CODE]
