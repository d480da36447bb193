"""The suite's one way to wait for something: poll a check until it holds, within a deadline.

    value = await eventually(lambda: hub_metrics()["accepted"] >= 3, timeout=10, what="3 accepted")

`check` may be a plain function or return an awaitable (an `async def` or a lambda calling
one); its exceptions propagate at once. The first truthy value is returned, so a check can hand
back what it found. On timeout the assertion names `what` and the last value seen.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

REPR_LIMIT = 400
"""The last value seen is quoted up to this many characters in a failure."""


async def eventually(
    check: Callable[[], T | Awaitable[T]],
    *,
    timeout: float = 20.0,
    what: str = "the condition",
    interval: float = 0.01,
) -> T:
    """Call `check` every `interval` seconds until it returns a truthy value; return that value.

    The default deadline is generous on purpose: it is spent only when the test fails, and a CI
    machine loaded by parallel workers can take seconds for what a quiet one does at once.
    `interval=0` only yields to the event loop between checks (for in-process tests whose
    progress needs no real time)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if loop.time() >= deadline:
            seen = repr(value)
            if len(seen) > REPR_LIMIT:
                seen = seen[:REPR_LIMIT] + "..."
            raise AssertionError(f"not within {timeout} s: {what} (last seen: {seen})")
        await asyncio.sleep(interval)
