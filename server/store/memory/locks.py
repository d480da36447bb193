"""Named locks with fencing tokens in memory."""

from __future__ import annotations

from collections import defaultdict


class MemoryLocks:
    def __init__(self) -> None:
        self._held: dict[str, tuple[str, float]] = {}
        self._fences: dict[str, int] = defaultdict(int)

    async def acquire_lock(self, name: str, owner: str, *, now: float, ttl_s: float) -> int | None:
        held = self._held.get(name)
        if held is not None and held[0] != owner and held[1] > now:
            return None
        self._held[name] = (owner, now + ttl_s)
        self._fences[name] += 1
        return self._fences[name]

    async def renew_lock(self, name: str, owner: str, *, now: float, ttl_s: float) -> bool:
        held = self._held.get(name)
        if held is None or held[0] != owner or held[1] <= now:
            return False
        self._held[name] = (owner, now + ttl_s)
        return True

    async def lock_owner(self, name: str, *, now: float) -> str | None:
        held = self._held.get(name)
        return held[0] if held is not None and held[1] > now else None

    async def release_lock(self, name: str, owner: str) -> None:
        held = self._held.get(name)
        if held is not None and held[0] == owner:
            del self._held[name]

    def fence(self, name: str) -> int:
        """The last fencing token issued for `name` (0: never)."""
        return self._fences[name]
