"""Allocation: an event's 100ms rooms, who sits in each, and the allocation document (proctors, times).

Seats and the document change together, in one fenced write (`save_allocation`): a writer whose lock
(locks.py) was taken over since its fence was issued writes nothing.
"""

from __future__ import annotations

from typing import Any, Protocol

from server.store.records import RoomRecord


class AllocationStore(Protocol):
    async def next_room_seq(self, event_id: str) -> int:
        """1, 2, 3, ... per event: room names built from it are unique, so a retried create is idempotent."""

    async def add_room(self, room: RoomRecord) -> None: ...
    async def list_rooms(self, event_id: str) -> list[RoomRecord]:
        """In the order they were added."""

    async def room_event(self, room_id: str) -> str | None:
        """The event a room was added for (`add_room`), None for rooms of no event here."""

    async def room_members(self, event_id: str) -> dict[str, list[str]]:
        """room_id -> candidate ids placed in it."""

    async def load_allocation(self, event_id: str) -> dict[str, Any]:
        """The event's allocation document (rooms' proctors, open flags, times; reports), {} if none."""

    async def save_allocation(
        self,
        event_id: str,
        *,
        fence: int,
        document: dict[str, Any],
        seat: list[tuple[str, str]],
        unseat: list[tuple[str, str]],
    ) -> bool:
        """Write the document and move seats (candidate, room) at once, unless a newer holder of the
        lock `alloc:{event_id}` was issued a fence since `fence`; False (and nothing written) then."""
