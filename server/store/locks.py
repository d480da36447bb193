"""Named locks with fencing tokens: one writer at a time for an event's allocation, a timeline, a job.

A lock is also a lease: its holder renews it (`renew_lock`, same fence) for as long as it works, and
every node can ask who holds it (`lock_owner`) to send it work. A holder that stalls past its deadline
loses the lock to the next `acquire_lock`, whose fence is higher: writes fenced with the old one fail.
"""

from __future__ import annotations

from typing import Protocol


class LockStore(Protocol):
    async def acquire_lock(self, name: str, owner: str, *, now: float, ttl_s: float) -> int | None:
        """Take the lock `name` for `ttl_s`; a fencing token that grows with every acquisition, or None
        while another owner holds it."""

    async def renew_lock(self, name: str, owner: str, *, now: float, ttl_s: float) -> bool:
        """Push the deadline of a lock `owner` still holds (its fence unchanged); False if it does not."""

    async def lock_owner(self, name: str, *, now: float) -> str | None:
        """Who holds `name` now, None if nobody does."""

    async def release_lock(self, name: str, owner: str) -> None: ...
