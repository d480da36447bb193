"""Allocation: an event's 100ms rooms, who sits in each, and each room's meta (open, proctors, times).

Seats, room metas and the event's shortage report change together, in one fenced write
(`save_allocation`): a writer whose lease on `alloc:{event_id}` (locks.py) was taken over since its
fence was issued writes nothing. A room's meta is kept per room, so a join that opens one room writes
one meta, whatever the event's size.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from server.store.records import RoomRecord, UserRecord

KEEP: Literal["keep"] = "keep"
"""`save_allocation(shortage=KEEP)`: leave the stored shortage report as it is."""
Shortage = dict[str, Any] | None | Literal["keep"]


class AllocationStore(Protocol):
    async def next_room_seq(self, event_id: str) -> int:
        """1, 2, 3, ... per event: room names built from it are unique, so a retried create is idempotent."""

    async def add_room(self, room: RoomRecord) -> None: ...
    async def list_rooms(self, event_id: str) -> list[RoomRecord]:
        """In the order they were added."""

    async def get_room(self, event_id: str, room_id: str) -> RoomRecord | None: ...
    async def room_event(self, room_id: str) -> str | None:
        """The event a room was added for (`add_room`), None for rooms of no event here."""

    async def room_members(self, event_id: str) -> dict[str, list[str]]:
        """room_id -> candidate ids placed in it."""

    async def load_allocation(self, event_id: str) -> dict[str, Any]:
        """`{"rooms": {room_id: meta}, "shortage": report or None}`; `{}` for an event never saved."""

    async def room_proctors(self, event_id: str, room_id: str) -> list[str]:
        """The proctors watching one room (its meta's `proctors`)."""

    async def save_allocation(
        self,
        event_id: str,
        *,
        fence: int,
        rooms: dict[str, dict[str, Any]],
        shortage: Shortage,
        seat: list[tuple[str, str]],
        unseat: list[tuple[str, str]],
    ) -> list[UserRecord] | None:
        """Write the metas of `rooms`, the shortage report, and move seats (candidate, room), unless a
        newer holder of the lease `alloc:{event_id}` was issued a fence since `fence`: then None, and
        nothing written. Otherwise the records of the seated candidates as now stored."""
