"""start_eagerly: the first step on the caller's stack, the rest (if any) in a task, as `await` would."""

from __future__ import annotations

import asyncio
import logging

import pytest

from server.hubs.eager import start_eagerly


async def test_a_coroutine_that_never_waits_runs_at_once_and_makes_no_task() -> None:
    steps: list[str] = []

    async def write() -> None:
        steps.append("written")

    assert start_eagerly(write(), "w") is None
    assert steps == ["written"]


async def test_a_coroutine_that_waits_goes_on_in_a_task_with_what_it_waited_for() -> None:
    steps: list[object] = []
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def write() -> None:
        steps.append("before")
        steps.append(await ready)
        await asyncio.sleep(0)
        steps.append("after")

    task = start_eagerly(write(), "w")
    assert task is not None and steps == ["before"]
    ready.set_result(42)
    await asyncio.wait_for(task, 5)
    assert steps == ["before", 42, "after"]


async def test_an_error_it_waited_on_is_raised_inside_it() -> None:
    failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    caught: list[BaseException] = []

    async def write() -> None:
        try:
            await failed
        except OSError as exc:
            caught.append(exc)

    task = start_eagerly(write(), "w")
    assert task is not None
    failed.set_exception(OSError("peer gone"))
    await asyncio.wait_for(task, 5)
    assert [str(e) for e in caught] == ["peer gone"]


async def test_cancelling_the_task_cancels_the_coroutine_where_it_waits() -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cleaned: list[str] = []

    async def write() -> None:
        try:
            await never
        finally:
            cleaned.append("finally")

    task = start_eagerly(write(), "w")
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally"]


async def test_a_failure_in_the_first_step_is_logged_not_raised_to_the_caller(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def write() -> None:
        raise ValueError("bug")

    with caplog.at_level(logging.ERROR, logger="proctorhub.hubs.eager"):
        assert start_eagerly(write(), "writer x") is None
    assert "writer x failed" in caplog.text
