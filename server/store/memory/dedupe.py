"""Dedupe keys in memory; expired keys are forgotten now and then, as Redis's PX does."""

from __future__ import annotations

KEPT_MIN = 1024


class MemoryDedupe:
    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._kept = KEPT_MIN

    async def once(self, key: str, *, now: float, ttl_s: float) -> bool:
        until = self._until.get(key)
        if until is not None and until > now:
            return False
        self._until[key] = now + ttl_s
        return True

    async def seen(self, keys: list[str], *, now: float) -> list[bool]:
        return [self._until.get(key, now) > now for key in keys]

    async def mark_seen(self, keys: list[str], *, now: float, ttl_s: float) -> None:
        for key in keys:
            self._until[key] = now + ttl_s
        if len(self._until) > 2 * self._kept:
            self._until = {k: until for k, until in self._until.items() if until > now}
            self._kept = max(len(self._until), KEPT_MIN)
