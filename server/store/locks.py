"""Named locks with fencing tokens: one writer at a time for an event's allocation, a timeline, a job."""

from __future__ import annotations

from typing import Protocol


class LockStore(Protocol):
    async def acquire_lock(self, name: str, owner: str, *, now: float, ttl_s: float) -> int | None:
        """Take the lock `name` for `ttl_s`; a fencing token that grows with every acquisition, or None
        while another owner holds it."""

    async def release_lock(self, name: str, owner: str) -> None: ...
