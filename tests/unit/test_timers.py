"""`TimerQueue` (pure, fake `now`) and `TimerLoop` (asyncio shell, controllable clock)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.hubs.timers import TimerLoop, TimerQueue
from tests.fake_clock import FakeClock, timers_ran
from tests.polling import eventually


def recorder() -> tuple[list[str], Callable[[str], Callable[[], None]]]:
    fired: list[str] = []

    def make(name: str) -> Callable[[], None]:
        return lambda: fired.append(name)

    return fired, make


def names(queue: TimerQueue, now: float, labels: dict[int, str]) -> list[str]:
    return [labels[id(t)] for t in queue.pop_due(now)]


# ---------------------------------------------------------------- TimerQueue


def test_due_timers_come_out_in_deadline_order() -> None:
    queue = TimerQueue()
    _, make = recorder()
    labels = {
        id(queue.push(deadline, make(name))): name for name, deadline in [("c", 30), ("a", 10), ("b", 20)]
    }
    assert queue.next_deadline() == 10
    assert names(queue, 5, labels) == []
    assert names(queue, 20, labels) == ["a", "b"]
    assert queue.next_deadline() == 30
    assert names(queue, 100, labels) == ["c"]
    assert queue.next_deadline() is None
    assert names(queue, 1000, labels) == []


def test_deadline_equal_to_now_is_due() -> None:
    queue = TimerQueue()
    timer = queue.push(10.0, lambda: None)
    assert queue.pop_due(9.999) == []
    assert queue.pop_due(10.0) == [timer]


def test_equal_deadlines_are_fifo() -> None:
    queue = TimerQueue()
    _, make = recorder()
    labels = {id(queue.push(5, make(str(i)))): str(i) for i in range(10)}
    assert names(queue, 5, labels) == [str(i) for i in range(10)]


def test_cancelled_timers_are_not_returned() -> None:
    queue = TimerQueue()
    _, make = recorder()
    a, b, c = queue.push(1, make("a")), queue.push(2, make("b")), queue.push(3, make("c"))
    b.cancel()
    assert queue.pop_due(10) == [a, c]


def test_next_deadline_skips_cancelled_timers() -> None:
    queue = TimerQueue()
    first = queue.push(1, lambda: None)
    second = queue.push(2, lambda: None)
    queue.push(3, lambda: None)
    first.cancel()
    second.cancel()
    assert queue.next_deadline() == 3
    assert len(queue) == 1  # the cancelled heads were dropped, not kept around


def test_all_cancelled_means_no_deadline() -> None:
    queue = TimerQueue()
    queue.push(1, lambda: None).cancel()
    assert queue.next_deadline() is None
    assert queue.pop_due(100) == []


def test_callbacks_are_not_run_by_the_queue() -> None:
    queue = TimerQueue()
    fired, make = recorder()
    timer = queue.push(1, make("a"))
    assert queue.pop_due(5) == [timer]
    assert fired == []
    timer.callback()
    assert fired == ["a"]


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(min_value=0, max_value=20).map(float)),
        st.tuples(st.just("push"), st.floats(min_value=0, max_value=20)),
        st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=200)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops=_ops, now=st.floats(min_value=-1, max_value=25))
def test_pop_due_returns_exactly_the_live_due_timers_in_order(
    ops: list[tuple[str, float]], now: float
) -> None:
    queue = TimerQueue()
    pushed: list[tuple[float, int]] = []  # (deadline, push order)
    timers = []
    cancelled: set[int] = set()
    for op, value in ops:
        if op == "push":
            timers.append(queue.push(value, lambda: None))
            pushed.append((value, len(pushed)))
        elif timers:
            index = int(value) % len(timers)
            timers[index].cancel()
            cancelled.add(index)
    live = sorted(p for p in pushed if p[1] not in cancelled)
    due = [order for deadline, order in live if deadline <= now]
    later = [order for deadline, order in live if deadline > now]

    assert queue.next_deadline() == (live[0][0] if live else None)
    assert [timers.index(t) for t in queue.pop_due(now)] == due
    assert queue.next_deadline() == (pushed[later[0]][0] if later else None)
    assert [timers.index(t) for t in queue.pop_due(float("inf"))] == later


# ---------------------------------------------------------------- TimerLoop


@pytest.fixture
async def loop_and_clock() -> AsyncIterator[tuple[TimerLoop, FakeClock]]:
    clock = FakeClock()
    timers = TimerLoop(clock)
    task = asyncio.get_running_loop().create_task(timers.run())
    yield timers, clock
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_loop_runs_callbacks_when_the_clock_passes_their_deadline(
    loop_and_clock: tuple[TimerLoop, FakeClock],
) -> None:
    timers, clock = loop_and_clock
    fired, make = recorder()
    timers.call_at(clock.now + 0.02, make("late"))
    timers.call_at(clock.now + 0.01, make("early"))
    timers.call_at(clock.now + 0.01, make("early-2"))
    await timers_ran(timers)
    assert fired == []  # the loop went over its timers, but the injected clock did not move

    clock.now += 0.015  # the loop's own wait (0.01 s) ends and finds two due
    await eventually(lambda: len(fired) == 2, what="the two early timers")
    assert fired == ["early", "early-2"]
    clock.now += 1
    await eventually(lambda: len(fired) == 3, what="the late timer")
    assert fired == ["early", "early-2", "late"]


async def test_an_earlier_timer_wakes_an_idle_loop(loop_and_clock: tuple[TimerLoop, FakeClock]) -> None:
    timers, clock = loop_and_clock
    fired, make = recorder()
    await timers_ran(timers)  # the loop now waits with no deadline at all
    timers.call_at(clock.now - 1, make("overdue"))
    await eventually(lambda: fired == ["overdue"], what="the overdue timer")


async def test_an_earlier_timer_preempts_a_far_one(loop_and_clock: tuple[TimerLoop, FakeClock]) -> None:
    timers, clock = loop_and_clock
    fired, make = recorder()
    timers.call_at(clock.now + 3600, make("far"))
    await timers_ran(timers)  # the loop now sleeps for an hour of real time
    timers.call_at(clock.now, make("now"))
    await eventually(lambda: fired == ["now"], what="the timer due now")
    await timers_ran(timers)
    assert fired == ["now"]


async def test_cancelled_timer_never_runs(loop_and_clock: tuple[TimerLoop, FakeClock]) -> None:
    timers, clock = loop_and_clock
    fired, make = recorder()
    timers.call_at(clock.now + 0.01, make("cancelled")).cancel()
    timers.call_at(clock.now + 0.02, make("kept"))
    clock.now += 1
    await eventually(lambda: fired == ["kept"], what="the kept timer")
    await timers_ran(timers)
    assert fired == ["kept"]


async def test_callback_may_schedule_another(loop_and_clock: tuple[TimerLoop, FakeClock]) -> None:
    timers, clock = loop_and_clock
    fired, make = recorder()

    def first() -> None:
        fired.append("first")
        timers.call_at(clock.now, make("second"))

    timers.call_at(clock.now, first)
    await eventually(lambda: fired == ["first", "second"], what="both timers")


async def test_a_failing_callback_is_logged_and_the_loop_goes_on(
    loop_and_clock: tuple[TimerLoop, FakeClock], caplog: pytest.LogCaptureFixture
) -> None:
    timers, clock = loop_and_clock
    fired, make = recorder()

    def boom() -> None:
        raise ValueError("boom")

    with caplog.at_level(logging.ERROR, logger="proctorhub.hubs.timers"):
        timers.call_at(clock.now, boom)
        timers.call_at(clock.now, make("after"))
        await eventually(lambda: fired == ["after"], what="the timer after the failing one")
    assert [r.message for r in caplog.records] == ["timer callback failed"]
    assert caplog.records[0].exc_info is not None

    timers.call_at(clock.now, make("later"))
    await eventually(lambda: fired == ["after", "later"], what="a timer set after the failure")
