"""A clock the test moves, for the parts that take one (`TimerLoop`, `TokenKeeper`, the hub)."""

from __future__ import annotations

from server.hubs.timers import TimerLoop
from tests.polling import eventually


class FakeClock:
    """Epoch seconds that change only when the test sets or advances `now`."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def timers_ran(timers: TimerLoop) -> None:
    """Until `timers` has run every callback due at its clock's time.

    A timer at -inf is earlier than any other, so it wakes the loop (an earlier deadline always
    does) and comes out first of the pass that runs every timer due; once it has run, they all have,
    and the loop is back waiting for the next deadline."""
    ran: list[bool] = []
    timers.call_at(float("-inf"), lambda: ran.append(True))
    await eventually(lambda: ran, interval=0, what="the timer loop's pass over what is due")
