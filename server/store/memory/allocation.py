"""Rooms, seats and allocation documents in memory; fences come from the lock part."""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any

from server.store.memory.locks import MemoryLocks
from server.store.memory.presence import MemoryPresence
from server.store.records import RoomRecord


class MemoryAllocation:
    def __init__(self, presence: MemoryPresence, locks: MemoryLocks) -> None:
        self._presence = presence
        self._locks = locks
        self._room_seq: dict[str, int] = defaultdict(int)
        self._rooms: dict[str, list[RoomRecord]] = defaultdict(list)
        self._room_events: dict[str, str] = {}
        self._members: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._documents: dict[str, dict[str, Any]] = {}

    async def next_room_seq(self, event_id: str) -> int:
        self._room_seq[event_id] += 1
        return self._room_seq[event_id]

    async def add_room(self, room: RoomRecord) -> None:
        rooms = self._rooms[room.event_id]
        self._room_events[room.room_id] = room.event_id
        if all(r.room_id != room.room_id for r in rooms):
            rooms.append(room)

    async def list_rooms(self, event_id: str) -> list[RoomRecord]:
        return list(self._rooms.get(event_id, ()))

    async def room_event(self, room_id: str) -> str | None:
        return self._room_events.get(room_id)

    async def room_members(self, event_id: str) -> dict[str, list[str]]:
        rooms = self._rooms.get(event_id, ())
        return {r.room_id: sorted(self._members.get((event_id, r.room_id), ())) for r in rooms}

    async def load_allocation(self, event_id: str) -> dict[str, Any]:
        return copy.deepcopy(self._documents.get(event_id, {}))

    async def save_allocation(
        self,
        event_id: str,
        *,
        fence: int,
        document: dict[str, Any],
        seat: list[tuple[str, str]],
        unseat: list[tuple[str, str]],
    ) -> bool:
        if fence != self._locks.fence(f"alloc:{event_id}"):
            return False
        for candidate_id, room_id in unseat:
            self._members[(event_id, room_id)].discard(candidate_id)
        for candidate_id, room_id in seat:
            self._members[(event_id, room_id)].add(candidate_id)
            self._presence.seat(event_id, candidate_id, room_id)
        self._documents[event_id] = copy.deepcopy(document)
        return True
