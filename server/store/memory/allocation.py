"""Rooms, seats and room metas in memory; fences come from the lock part."""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any

from server.store.allocation import KEEP, Shortage
from server.store.memory.locks import MemoryLocks
from server.store.memory.presence import MemoryPresence
from server.store.records import RoomRecord, UserRecord


class MemoryAllocation:
    def __init__(self, presence: MemoryPresence, locks: MemoryLocks) -> None:
        self._presence = presence
        self._locks = locks
        self._room_seq: dict[str, int] = defaultdict(int)
        self._rooms: dict[str, list[RoomRecord]] = defaultdict(list)
        self._room_events: dict[str, str] = {}
        self._members: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._metas: dict[str, dict[str, dict[str, Any]]] = {}
        self._shortages: dict[str, dict[str, Any] | None] = {}

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

    async def get_room(self, event_id: str, room_id: str) -> RoomRecord | None:
        return next((r for r in self._rooms.get(event_id, ()) if r.room_id == room_id), None)

    async def room_event(self, room_id: str) -> str | None:
        return self._room_events.get(room_id)

    async def room_members(self, event_id: str) -> dict[str, list[str]]:
        rooms = self._rooms.get(event_id, ())
        return {r.room_id: sorted(self._members.get((event_id, r.room_id), ())) for r in rooms}

    async def load_allocation(self, event_id: str) -> dict[str, Any]:
        if event_id not in self._metas and event_id not in self._shortages:
            return {}
        return copy.deepcopy(
            {"rooms": self._metas.get(event_id, {}), "shortage": self._shortages.get(event_id)}
        )

    async def room_proctors(self, event_id: str, room_id: str) -> list[str]:
        return list(self._metas.get(event_id, {}).get(room_id, {}).get("proctors", ()))

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
        if fence != self._locks.fence(f"alloc:{event_id}"):
            return None
        metas = self._metas.setdefault(event_id, {})
        metas.update(copy.deepcopy(rooms))
        if shortage != KEEP:
            self._shortages[event_id] = copy.deepcopy(shortage)
        seated: list[UserRecord] = []
        for candidate_id, room_id in seat:
            self._members[(event_id, room_id)].add(candidate_id)
            record = self._presence.seat(event_id, candidate_id, room_id)
            if record is not None:
                seated.append(record)
        for candidate_id, room_id in unseat:
            self._members[(event_id, room_id)].discard(candidate_id)
        return seated
