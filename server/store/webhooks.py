"""The webhook inbox: a durable queue with one consumer group (every node takes a share), a dead-letter
list, and the 100ms room names learnt from webhooks.

Claims measure how long an entry has waited unacked with the backend's own monotonic clock (Redis
measures it itself; the memory queue takes one at construction): it is never compared with `now`.
"""

from __future__ import annotations

from typing import Protocol


class WebhookQueue(Protocol):
    async def append(self, payload: bytes) -> str:
        """Store one webhook durably; its entry id. Raises if the backend is unreachable."""

    async def claim(
        self, consumer: str, *, count: int, block_s: float, min_idle_s: float
    ) -> list[tuple[str, bytes]]:
        """Up to `count` entries for `consumer`: first those delivered (to any consumer) more than
        `min_idle_s` ago and never acked, then new ones; waits up to `block_s` when there are none.
        The first claim of a consumer name on this store object (after a restart) returns at once the
        entries still pending on that name."""

    async def ack(self, ids: list[str]) -> None:
        """Done with these entries: they leave the queue."""

    async def backlog(self) -> int:
        """Entries stored and not yet acked (new and pending)."""

    async def park(self, entry_id: str, payload: bytes, *, error: str) -> None:
        """Move an entry that kept failing to the dead-letter list (and out of the queue)."""

    async def parked(self) -> list[tuple[str, bytes, str]]:
        """The dead-letter list: (entry id, payload, error), oldest first."""

    async def remember_room_name(self, room_id: str, name: str) -> None:
        """100ms room id -> name, learnt from webhooks that carry both (recording events do not)."""

    async def room_name_of(self, room_id: str) -> str | None: ...
