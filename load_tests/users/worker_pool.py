"""Worker processes that hold the simulated users (or the benches' sockets), driven over a pipe.

One process per core, each with one asyncio loop: thousands of sockets per process, and the main
process stays free to watch. Workers are spawned (not forked: no copy of the parent's loop or
threads), daemonic, and die with their parent however it ends (PR_SET_PDEATHSIG, and a thread that
watches the parent's pid where that is not enough). The same helpers set up the servers a run
starts (procs.py): raised file limit, killed with the tester.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import multiprocessing
import multiprocessing.process
import os
import resource
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

_PR_SET_PDEATHSIG = 1


def raise_nofile() -> tuple[int, int]:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; the resulting (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else 1_048_576
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no-op elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def watch_parent() -> None:
    """Exit when the parent process is gone (also if PR_SET_PDEATHSIG could not be set)."""
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)


class GcPauses:
    """The longest garbage collection this process made since it was last reset (seconds): a client
    paused by its own collector timestamps late what it reads meanwhile, which a figure would blame
    on the hub."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.longest = max(self.longest, time.perf_counter() - self._started)


def worker_setup() -> None:
    """First thing in a worker process: die with the parent, room for many sockets."""
    die_with_parent()
    raise_nofile()
    threading.Thread(target=watch_parent, daemon=True).start()


class WorkerPool:
    """Worker processes (spawned, daemonic) and the pipes that drive them."""

    def __init__(self, count: int, target: Callable[[Connection, int], None], name: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs: list[multiprocessing.process.BaseProcess] = []
        for index in range(count):
            parent, child = context.Pipe()
            proc = context.Process(target=target, args=(child, index), daemon=True, name=f"{name}-{index}")
            proc.start()
            child.close()
            self.pipes.append(parent)
            self.procs.append(proc)

    def __len__(self) -> int:
        return len(self.pipes)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    async def call(self, index: int, command: str, timeout: float, **args: Any) -> Any:
        """Run one command in one worker; raise RuntimeError if it failed there."""
        pipe = self.pipes[index]
        pipe.send((command, args))
        status, value = await asyncio.wait_for(asyncio.to_thread(pipe.recv), timeout)
        if status != "ok":
            raise RuntimeError(f"worker {index}: {command} failed: {value}")
        return value

    async def each(self, command: str, args: list[dict[str, Any]], timeout: float) -> list[Any]:
        """The same command in every worker, with per-worker arguments, concurrently."""
        return list(await asyncio.gather(*(self.call(i, command, timeout, **a) for i, a in enumerate(args))))

    def stop(self) -> None:
        """Ask the workers to exit, then kill what is left."""
        for pipe in self.pipes:
            with contextlib.suppress(OSError, ValueError):
                pipe.send(("exit", {}))
        for proc in self.procs:
            proc.join(timeout=3)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=3)
        for pipe in self.pipes:
            pipe.close()
