"""Back-pressure for joins: at most N sockets attach at once, the rest wait in line with a deadline.

An arrival storm (5,000 candidates within seconds) would otherwise start thousands of attaches at
once, each wanting a store connection: the Redis pool runs dry, every join waits on it and a join
that finally fails has already cost its share. With the gate, a bounded number of joins run (fewer
than the store's connections, so status changes and timers still get theirs), the others queue in
arrival order, and one still waiting at the deadline is refused with 1013 (try later) instead of
timing out deep inside the store. The client's backoff spreads the retry.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from server.errors import TryLater


class JoinGate:
    """A FIFO semaphore with a deadline; `waiting` and `running` are what /metrics shows."""

    def __init__(
        self, concurrency: int, deadline_s: float, on_refused: Callable[[], None] = lambda: None
    ) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self.deadline_s = deadline_s
        self.on_refused = on_refused
        self.waiting = 0
        self.running = 0

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Hold a slot for the body; raise `TryLater` if none came free within the deadline."""
        self.waiting += 1
        try:
            async with asyncio.timeout(self.deadline_s):
                await self._slots.acquire()
        except TimeoutError:
            self.on_refused()
            raise TryLater("the hub is busy admitting others; try again shortly") from None
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._slots.release()
