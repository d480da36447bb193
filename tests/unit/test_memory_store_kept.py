"""The memory store keeps what it is given at the size of its content, not of orjson's buffer."""

from __future__ import annotations

import gc
import tracemalloc

import orjson

from server.store.memory.backfill import MemoryBackfill
from server.store.memory.locks import MemoryLocks
from server.store.memory.presence import MemoryPresence
from server.store.memory.timelines import MemoryTimelines

COUNT = 500


def alert(i: int) -> bytes:
    return orjson.dumps({"alert_id": f"video.gap:c{i}:1796607042160", "kind": "video.gap", "state": "open"})


async def held_bytes_each(keep) -> float:  # type: ignore[no-untyped-def]
    """Traced bytes per item still held after `keep` stored COUNT fresh orjson outputs."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        await keep([alert(i) for i in range(COUNT)])
        gc.collect()
        return (tracemalloc.get_traced_memory()[0] - before) / COUNT
    finally:
        tracemalloc.stop()


async def test_timelines_keep_signals_and_alerts_at_their_size() -> None:
    timelines = MemoryTimelines(MemoryPresence(), MemoryLocks(), MemoryBackfill())
    assert len(alert(0)) < 100
    each = await held_bytes_each(lambda items: timelines.add_signals("e", "c", items))
    assert each < 1024, each  # orjson's own buffer is 4 KiB each
    each = await held_bytes_each(
        lambda items: timelines.put_alerts("e", "c2", {str(i): b for i, b in enumerate(items)})
    )
    assert each < 1024, each
    assert sorted(await timelines.get_signals("e", "c")) == sorted(alert(i) for i in range(COUNT))


async def test_backfill_keeps_requests_at_their_size() -> None:
    backfill = MemoryBackfill()
    each = await held_bytes_each(
        lambda items: backfill.put_requests("e", "c", {str(i): b for i, b in enumerate(items)})
    )
    assert each < 1024, each
    assert (await backfill.get_requests("e", "c"))["7"] == alert(7)
