"""Deadlines for many connections on one task.

`TimerQueue` is pure (a heap; the caller passes `now`); `TimerLoop` is the thin
asyncio shell that sleeps until the earliest deadline. Session expiry warnings
(and, in later issues, token refreshes) are scheduled here instead of one
sleeping task per socket, which would cost memory at 10,000 sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("proctorhub.hubs.timers")


@dataclass(order=True, slots=True)
class Timer:
    deadline: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class TimerQueue:
    def __init__(self) -> None:
        self._heap: list[Timer] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, deadline: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(deadline, next(self._seq), callback)
        heapq.heappush(self._heap, timer)
        return timer

    def next_deadline(self) -> float | None:
        while self._heap and self._heap[0].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0].deadline if self._heap else None

    def pop_due(self, now: float) -> list[Timer]:
        due: list[Timer] = []
        while self._heap and self._heap[0].deadline <= now:
            timer = heapq.heappop(self._heap)
            if not timer.cancelled:
                due.append(timer)
        return due


class TimerLoop:
    """Runs the callbacks of a `TimerQueue` as their deadlines pass (wall clock, epoch seconds)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._queue = TimerQueue()
        self._wakeup = asyncio.Event()

    def call_at(self, deadline: float, callback: Callable[[], None]) -> Timer:
        earliest = self._queue.next_deadline()
        timer = self._queue.push(deadline, callback)
        if earliest is None or deadline < earliest:
            self._wakeup.set()
        return timer

    async def run(self) -> None:
        while True:
            for timer in self._queue.pop_due(self._clock()):
                try:
                    timer.callback()
                except Exception:
                    log.exception("timer callback failed")
            deadline = self._queue.next_deadline()
            delay = None if deadline is None else max(0.0, deadline - self._clock())
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), delay)
