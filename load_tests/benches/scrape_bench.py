"""What /metrics' presence counts cost a node, per scrape, on the memory store and on Redis.

    .venv/bin/python -m load_tests.benches.scrape_bench --users 5000,20000

For each size: an event of that many candidates (every tenth offline, every twentieth finished) in
each store, then the counts made two ways, `--rounds` times each, timed by this process's CPU clock
and the wall clock: `records`, every user's record read and counted by the node (what a scrape did
before `PresenceStore.count_users`), and `count_users`, the store's own count (Redis counts inside
a script; its CPU there is redis-server's, not the node's, and shows in the wall time). Redis is a
redis-server of its own on 127.0.0.1, stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from load_tests.benches.output import environment, table, write_json
from load_tests.run.procs import start_redis
from server.store.base import Store
from server.store.memory import MemoryStore
from server.store.records import ConnRef
from server.store.redis import RedisStore

EVENT = "scrape"
Count = Callable[[Store], Awaitable[Counter[tuple[str, str]]]]


async def _records(store: Store) -> Counter[tuple[str, str]]:
    return Counter((u.role, u.presence) for u in await store.presence.list_users(EVENT))


async def _store_count(store: Store) -> Counter[tuple[str, str]]:
    return await store.presence.count_users(EVENT)


async def _fill(store: Store, first: int, last: int) -> None:
    """Candidates `first`..`last`-1: every tenth offline, every twentieth finished, the rest online."""
    for n in range(first, last):
        user = f"c{n:06d}"
        ref = ConnRef(EVENT, user, f"k{n}", "bench-node")
        await store.presence.connect(ref, role="candidate", name=None, now=1.0)
        if n % 10 == 0:
            await store.presence.disconnect(ref, now=2.0, grace_s=0.0)
        elif n % 20 == 1:
            await store.presence.finish(EVENT, user, now=2.0)
    await store.presence.expire_graces(3.0)


async def _time(store: Store, count: Count, rounds: int) -> tuple[float, float, Counter[tuple[str, str]]]:
    cpu, wall, counts = [], [], Counter[tuple[str, str]]()
    for _ in range(rounds):
        started_cpu, started = time.process_time(), time.perf_counter()
        counts = await count(store)
        cpu.append(time.process_time() - started_cpu)
        wall.append(time.perf_counter() - started)
    return statistics.median(cpu) * 1000, statistics.median(wall) * 1000, counts


async def _measure(store: Store, sizes: list[int], rounds: int) -> dict[str, Any]:
    figures: dict[str, float] = {}
    filled = 0
    for size in sizes:
        await _fill(store, filled, size)  # the sizes grow one event
        filled = size
        expected: Counter[tuple[str, str]] | None = None
        for name, count in (("records", _records), ("count_users", _store_count)):
            cpu_ms, wall_ms, counts = await _time(store, count, rounds)
            if expected is not None and counts != expected:
                raise AssertionError(f"{name} counted {counts}, records counted {expected}")
            expected = counts
            figures[f"{name}_{size}_node_cpu_ms"] = round(cpu_ms, 2)
            figures[f"{name}_{size}_wall_ms"] = round(wall_ms, 2)
    return {"figures": figures}


async def _run_store(kind: str, sizes: list[int], rounds: int) -> dict[str, Any]:
    redis = start_redis() if kind == "redis" else None
    store: Store = MemoryStore() if redis is None else RedisStore(redis.url)
    try:
        await store.start()
        return await _measure(store, sizes, rounds)
    finally:
        await store.close()
        if redis is not None:
            redis.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", default="5000,20000", help="event sizes, comma-separated")
    parser.add_argument(
        "--rounds", type=int, default=20, help="counts per way and size (the median is shown)"
    )
    args = parser.parse_args(argv)
    sizes = sorted(int(n) for n in args.users.split(","))
    runs = {kind: asyncio.run(_run_store(kind, sizes, args.rounds)) for kind in ("memory", "redis")}
    print(table("presence counts per scrape (median ms)", runs))
    run_id = time.strftime("scrape-%Y%m%d-%H%M%S")
    path = write_json(run_id, {"args": vars(args), "environment": environment(), "runs": runs})
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
