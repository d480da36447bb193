"""Background work that is owned: every task has an owner that reads its failure, logs it, counts it.

    Outage        one failing dependency: logged once when it starts failing, then at most once a
                  minute while it lasts, and once when it recovers (thousands of webhooks a second must
                  not mean thousands of log lines while Redis is down); `pause` backs off between tries
    Background    the tasks of one part (presence, stats, the monitor, ...): `every` runs a periodic
                  tick whose failures go through an Outage; `spawn` runs one coroutine whose exception
                  is logged and counted instead of vanishing ("Task exception was never retrieved");
                  `stop` cancels what is left and waits for it

`on_failure(name)` is told of every failure (the hub counts them in /metrics by loop name).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 5.0
LOG_EVERY_S = 60.0
STOP_GIVE_UP_S = 5.0

Counted = Callable[[str], None]


def _uncounted(name: str) -> None:
    return None


class Outage:
    def __init__(self, log: logging.Logger, what: str, *, every_s: float = LOG_EVERY_S) -> None:
        self._log = log
        self._what = what
        self._every_s = every_s
        self._since: float | None = None
        self._logged_at = 0.0
        self._count = 0
        self._backoff = BACKOFF_MIN_S

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._count += 1
        if self._since is None:
            self._since = self._logged_at = now
            self._log.warning("%s failed: %r", self._what, exc, exc_info=_trace(exc))
        elif now - self._logged_at >= self._every_s:
            self._logged_at = now
            self._log.warning("%s still failing (%d failures): %r", self._what, self._count, exc)

    async def pause(self, exc: BaseException) -> None:
        """`failed`, then wait before the caller tries again (longer each time, up to BACKOFF_MAX_S)."""
        self.failed(exc)
        await asyncio.sleep(self._backoff)
        self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)

    def recovered(self) -> None:
        self._backoff = BACKOFF_MIN_S
        if self._since is not None:
            self._log.warning(
                "%s works again after %.1fs (%d failures)",
                self._what,
                time.monotonic() - self._since,
                self._count,
            )
            self._since = None
            self._count = 0


def _trace(exc: BaseException) -> BaseException | None:
    """A dependency being down (OSError, redis's ConnectionError) needs no traceback; a bug does."""
    return None if isinstance(exc, OSError | ConnectionError | TimeoutError) or _is_io(exc) else exc


def _is_io(exc: BaseException) -> bool:
    # redis-py's errors do not subclass OSError; they are recognised by module, not imported here.
    return type(exc).__module__.startswith(("redis.", "httpx.", "botocore."))


class Background:
    """The background tasks of one part of a node; see the module docstring."""

    def __init__(self, log: logging.Logger, *, on_failure: Counted = _uncounted) -> None:
        self._log = log
        self._on_failure = on_failure
        self._loops: list[asyncio.Task[None]] = []
        self._spawned: set[asyncio.Task[Any]] = set()
        self.stopping = False
        """Set by `stop`: loops that catch errors check it, so a swallowed cancellation still ends them."""

    def every(
        self,
        name: str,
        interval_s: float | Callable[[], float],
        tick: Callable[[], Awaitable[object]],
        *,
        first_delay_s: float | None = None,
    ) -> None:
        """Call `tick` every `interval_s` (a number, or a function read before each wait) until stopped."""
        outage = Outage(self._log, name)

        def interval() -> float:
            return interval_s() if callable(interval_s) else interval_s

        async def loop() -> None:
            await asyncio.sleep(interval() if first_delay_s is None else first_delay_s)
            while not self.stopping:
                try:
                    await tick()
                except Exception as exc:
                    self._on_failure(name)
                    outage.failed(exc)
                else:
                    outage.recovered()
                await asyncio.sleep(interval())

        self._loops.append(asyncio.get_running_loop().create_task(loop(), name=name))

    def run(self, name: str, forever: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run a loop that handles its own waits; if it ever ends with an error, that is logged."""
        task = asyncio.get_running_loop().create_task(forever(), name=name)
        task.add_done_callback(lambda t: self._ended(name, t))
        self._loops.append(task)

    def spawn(self, name: str, coro: Coroutine[Any, Any, object]) -> asyncio.Task[Any]:
        """Run one coroutine in the background; its failure is logged and counted, never lost."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._spawned.add(task)
        task.add_done_callback(lambda t: self._finished(name, t))
        return task

    def _finished(self, name: str, task: asyncio.Task[Any]) -> None:
        self._spawned.discard(task)
        self._ended(name, task)

    def _ended(self, name: str, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._on_failure(name)
            self._log.warning("%s failed: %r", name, exc, exc_info=_trace(exc))

    @property
    def pending(self) -> int:
        return len(self._spawned)

    async def stop(self, *, wait_s: float = 0.0, give_up_s: float = STOP_GIVE_UP_S) -> None:
        """Cancel the loops; give spawned work up to `wait_s` to finish, then cancel it too. A task that
        swallows its cancellation (a client library turning it into its own error) is cancelled again
        and, after `give_up_s`, left behind with a warning: stopping never hangs."""
        self.stopping = True
        for task in self._loops:
            task.cancel()
        if self._spawned and wait_s > 0:
            await asyncio.wait(set(self._spawned), timeout=wait_s)
        everything = await cancel_all({*self._loops, *self._spawned}, give_up_s)
        if everything:
            names = ", ".join(sorted(t.get_name() for t in everything))
            self._log.warning(
                "%d background tasks did not stop within %gs: %s", len(everything), give_up_s, names
            )
        self._loops = []
        self._spawned.clear()


async def cancel_all(tasks: set[asyncio.Task[Any]], give_up_s: float) -> set[asyncio.Task[Any]]:
    """Cancel `tasks` and wait for them, cancelling again every 0.5 s (a client library's read may
    swallow one cancellation and wait on), for at most `give_up_s`; the tasks still running then."""
    deadline = asyncio.get_running_loop().time() + give_up_s
    while tasks and (left := deadline - asyncio.get_running_loop().time()) > 0:
        for task in tasks:
            task.cancel()
        _, tasks = await asyncio.wait(tasks, timeout=min(left, 0.5))
    return tasks


async def in_batches(calls: Iterable[Awaitable[object]], *, at_once: int = 32) -> None:
    """Await store calls a few dozen at a time: their round trips overlap without draining the pool."""
    batch: list[Awaitable[object]] = []
    for call in calls:
        batch.append(call)
        if len(batch) >= at_once:
            await asyncio.gather(*batch)
            batch = []
    if batch:
        await asyncio.gather(*batch)
