"""When a test runs far longer than any should, print what every running event loop is waiting on.

faulthandler (`faulthandler_timeout`) shows the threads' stacks, which for an async test is only an
event loop idle in `select`; the awaits that never resolve are in its tasks. A timer thread finds the
running loops and asks each, thread-safely, to print its tasks with their await chains to stderr.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

REPORT_AFTER_S = float(os.environ.get("PROCTORHUB_TEST_HANG_REPORT_S", "100"))
"""Before faulthandler's 120 s dump, so both land in the same failing output (sooner when chasing one)."""

_terminal: list[int] = []
"""A copy of stderr taken before output capture: a test that never ends shows no captured output."""


def pytest_configure(config: pytest.Config) -> None:
    _terminal.append(os.dup(2))


def _await_chain(task: asyncio.Task[Any]) -> list[str]:
    lines, awaited, depth = [], task.get_coro(), 0
    while awaited is not None and depth < 30:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is not None:
            lines.append(f"    {frame.f_code.co_qualname} ({frame.f_code.co_filename}:{frame.f_lineno})")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
        depth += 1
    return lines


def _print_tasks(loop: asyncio.AbstractEventLoop, test: str) -> None:
    out = [f"\n=== {test}: still running after {REPORT_AFTER_S:g} s; the tasks of its event loop:"]
    for task in asyncio.all_tasks(loop):
        out.append(f"--- {task.get_name()}: {task!r}"[:400])
        out.extend(_await_chain(task))
    os.write(_terminal[0], ("\n".join(out) + "\n").encode())


def _report(test: str) -> None:
    loops = [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and o.is_running()]
    for loop in loops:
        loop.call_soon_threadsafe(_print_tasks, loop, test)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    timer = threading.Timer(REPORT_AFTER_S, _report, args=(item.nodeid,))
    timer.daemon = True
    timer.start()
    try:
        return (yield)
    finally:
        timer.cancel()
