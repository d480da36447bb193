"""The simulator's background tasks: webhook retries, reconnect windows, recording delays.

Every task is tracked so `close()` can cancel and await all of them: no task outlives the simulator
and none ends with an unretrieved exception (a failure is logged, once, with its traceback).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("proctorhub.hms.simulator")


class Tasks:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None) -> asyncio.Task[Any]:
        if self._closed:
            coro.close()
            raise RuntimeError("the simulator is stopped")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def later(self, delay: float, fn: Callable[[], Any], *, name: str | None = None) -> asyncio.Task[Any]:
        """Call `fn()` after `delay` seconds (awaiting it if it returns an awaitable)."""

        async def run() -> None:
            await asyncio.sleep(delay)
            result = fn()
            if asyncio.iscoroutine(result):
                await result

        return self.spawn(run(), name=name)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("simulator task %s failed", task.get_name(), exc_info=task.exception())

    def reopen(self) -> None:
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
