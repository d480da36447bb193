"""Dedupe keys with a lifetime: "has this been seen" across nodes (webhook event ids)."""

from __future__ import annotations

from typing import Protocol


class DedupeStore(Protocol):
    async def once(self, key: str, *, now: float, ttl_s: float) -> bool:
        """True the first time `key` is seen within `ttl_s`, False after."""

    async def seen(self, keys: list[str], *, now: float) -> list[bool]:
        """For each key, whether it was marked (by `once` or `mark_seen`) and is still within its ttl.
        Marks nothing: a check before work whose success is marked afterwards."""

    async def mark_seen(self, keys: list[str], *, now: float, ttl_s: float) -> None: ...
