"""Bytes the memory store keeps, at the size of their content.

orjson hands back its output in the 4 KiB buffer it wrote it into: a 208-byte alert holds 4,094 bytes
(tracemalloc) for as long as it lives. In flight that costs nothing; kept for every candidate's
signals, alerts and backfill requests it was most of the embedded hub's growth over an exam (8 KiB a
candidate after 30 s of 10,000 idle candidates). A copy is exactly as long as its content.
"""

from __future__ import annotations

from collections.abc import Iterable


def kept(data: bytes) -> bytes:
    return bytes(memoryview(data))


def all_kept(items: Iterable[bytes]) -> list[bytes]:
    return [kept(item) for item in items]
