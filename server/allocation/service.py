"""Rooms for users, applied to the store.

Until the planner lands (allocation issue), placement is the interim policy
the hub needs for tokens: a candidate keeps its room (sticky) or takes the
first seat free in the event's rooms, atomically in the store; when every room
is full a new one is created through the 100ms API and announced, so proctors
get it. A proctor watches every room of its event.

Room names are `{prefix}-{event}-{seq}` with a per-event sequence from the
store: unique, so a create retried by the REST client (an upsert by name at
100ms, contract §2.2) never makes two rooms.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Protocol

from server.store.base import EventConfig, RoomRecord, Store

log = logging.getLogger("proctorhub.allocation.service")

DEFAULT_EVENT = EventConfig(event_id="", name="")
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9.\-:_]")
MAX_PLACE_ATTEMPTS = 4


class RoomFactory(Protocol):
    async def create_room(self, name: str, description: str) -> str:
        """Create (or find, by name) a 100ms room; its id."""


class NoRoom(Exception):
    """No room could be found or made for a candidate; the message says why."""


def room_name(prefix: str, event_id: str, seq: int) -> str:
    return f"{prefix}-{_NAME_UNSAFE.sub('_', event_id)}-{seq}"


class RoomService:
    def __init__(
        self,
        store: Store,
        factory: RoomFactory,
        *,
        prefix: str,
        clock: Callable[[], float],
        on_new_room: Callable[[RoomRecord], Awaitable[None]],
    ) -> None:
        self._store = store
        self._factory = factory
        self._prefix = prefix
        self._clock = clock
        self._on_new_room = on_new_room

    async def event(self, event_id: str) -> EventConfig:
        return await self._store.get_event(event_id) or DEFAULT_EVENT

    async def room_for_candidate(self, event_id: str, user_id: str) -> tuple[RoomRecord, bool]:
        """The candidate's room, and whether it was placed just now (else it already had it)."""
        event = await self.event(event_id)
        record = await self._store.get_user(event_id, user_id)
        had_room = record is not None and record.room_id is not None
        for _ in range(MAX_PLACE_ATTEMPTS):
            room_id = await self._store.place_candidate(event_id, user_id, room_size=event.room_size)
            if room_id is not None:
                return await self._room(event_id, room_id), not had_room
            await self.add_room(event_id)
        raise NoRoom(f"no seat for {user_id!r} in event {event_id!r} after {MAX_PLACE_ATTEMPTS} new rooms")

    async def rooms_for_proctor(self, event_id: str) -> list[RoomRecord]:
        return await self._store.list_rooms(event_id)

    async def add_room(self, event_id: str) -> RoomRecord:
        seq = await self._store.next_room_seq(event_id)
        name = room_name(self._prefix, event_id, seq)
        room_id = await self._factory.create_room(name, f"proctorhub event {event_id}")
        room = RoomRecord(event_id, room_id, name, created_at=self._clock())
        await self._store.add_room(room)
        log.info("room %s (%s) added to event %s", name, room_id, event_id)
        await self._on_new_room(room)
        return room

    async def _room(self, event_id: str, room_id: str) -> RoomRecord:
        for room in await self._store.list_rooms(event_id):
            if room.room_id == room_id:
                return room
        raise NoRoom(f"room {room_id!r} of event {event_id!r} is not in the store")
