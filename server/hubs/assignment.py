"""`room.assign` and `roster` for a socket: the user's room(s) with a fresh 100ms token each.

Used by the state sync on every (re)connect and whenever an allocation pass changed
what the user is assigned. A candidate gets its one room; a proctor the rooms the
planner gave it, and the roster of the candidates seated there. Each token sent is
then kept fresh by the `TokenKeeper`.
"""

from __future__ import annotations

import asyncio
import logging

from server.allocation.service import AllocationService, NoRoom, UnknownEvent
from server.auth import Session
from server.hubs.connection import Connection
from server.hubs.presence import candidate_status
from server.hubs.snapshots import UserSnapshots
from server.hubs.tokens import TokenAck, TokenKeeper
from server.protocol import Outbound
from server.store.events import EventStore
from server.store.presence import PresenceStore
from server.store.records import HeldToken, RoomRecord, UserRecord

log = logging.getLogger("proctorhub.hubs.assignment")

SEAT_TIMEOUT_S = 10.0
"""How long a proctor's state sync waits for the allocation pass its arrival asks for."""


def _session(conn: Connection) -> Session:
    if conn.session is None:
        raise RuntimeError("Expected an authenticated connection, but got none")
    return conn.session


def _entry(room: RoomRecord, token: HeldToken) -> dict[str, object]:
    return {
        "room_id": room.room_id,
        "room_name": room.name,
        "hms_token": token.token,
        "token_exp": int(token.exp),
    }


class Assigner:
    """What one socket is assigned, as the messages that tell it (with a fresh 100ms token per room)."""

    def __init__(
        self,
        users: PresenceStore,
        events: EventStore,
        rooms: AllocationService,
        tokens: TokenKeeper,
        snapshots: UserSnapshots,
    ) -> None:
        self._users = users
        self._events = events
        self._rooms = rooms
        self._tokens = tokens
        self._snapshots = snapshots

    async def _token(self, conn: Connection, room: RoomRecord, lifetime_s: float) -> HeldToken:
        session = _session(conn)
        key = (session.event_id, session.user_id, room.room_id)
        token = await self._tokens.token_for(key, role=session.role, lifetime_s=lifetime_s)
        self._tokens.hold(conn, key, token, role=session.role, lifetime_s=lifetime_s)
        return token

    async def _seat(self, event_id: str, user_id: str, record: UserRecord | None) -> tuple[str, bool]:
        """The candidate's room id, and whether it was seated just now (an allocation pass ran for it)."""
        if record is not None and record.room_id is not None:
            return record.room_id, False  # seats are sticky: an unfinished candidate's room stays open
        return await self._rooms.seat(event_id, user_id), True

    async def candidate(
        self, conn: Connection, *, reason: str | None = None, only_if_changed: bool = False
    ) -> Outbound | None:
        session = _session(conn)
        record, conn.joined = conn.joined, None  # read at connect: no second read in the state sync
        if record is None:
            record = await self._users.get_user(session.event_id, session.user_id)
        if record is not None and record.presence == "finished":
            return None
        if only_if_changed and record is not None and conn.assigned == frozenset({record.room_id}):
            return None
        room_id, placed = await self._seat(session.event_id, session.user_id, record)
        room = await self._rooms.room_of(session.event_id, room_id)
        event = await self._rooms.event(session.event_id)
        token = await self._token(conn, room, event.token_ttl_s)
        data = {**_entry(room, token), "reason": reason or ("join" if placed else "recovery")}
        conn.assigned = frozenset({room.room_id})
        return Outbound("room.assign", data, ack_key=TokenAck(((room.room_id, token.jti, token.exp),)))

    async def proctor(self, conn: Connection, *, reason: str, always: bool = False) -> list[Outbound]:
        """`room.assign` with the proctor's rooms and its `roster` (nothing at connect without a room)."""
        session = _session(conn)
        rooms = await self._rooms.proctor_rooms(session.event_id, session.user_id)
        kept = {r.room_id for r in rooms}
        for room_id in [r for r in conn.tokens if r not in kept]:
            self._tokens.release_key(conn, (session.event_id, session.user_id, room_id))
            del conn.tokens[room_id]
        if not rooms and not always:
            return []
        event = await self._rooms.event(session.event_id)
        entries = []
        acks = []
        for room in rooms:
            token = await self._token(conn, room, event.token_ttl_s)
            entries.append(_entry(room, token))
            acks.append((room.room_id, token.jti, token.exp))
        assign = Outbound("room.assign", {"rooms": entries, "reason": reason}, ack_key=TokenAck(tuple(acks)))
        conn.assigned = frozenset(kept)
        users = await self._snapshots.users(session.event_id)
        watched = [dict(candidate_status(u)) for u in users if u.role == "candidate" and u.room_id in kept]
        conn.shown = {u["candidate_id"] for u in watched}
        return [assign, Outbound("roster", {"candidates": watched})]

    async def state(self, conn: Connection) -> list[Outbound]:
        """State-sync provider: what the socket's user is assigned, with tokens (and a proctor's roster)."""
        session = _session(conn)
        if session.event_id == "*" or session.role == "admin":
            return []
        try:
            await self._rooms.event(session.event_id)
        except UnknownEvent:
            message = f"event {session.event_id!r} is not configured on the hub: no video room"
            return [Outbound("error", {"code": "event_unknown", "message": message})]
        if session.role == "candidate":
            message = await self.candidate(conn)
            return [] if message is None else [message]
        if session.role == "proctor":
            # A proctor arriving changes the allocation (it gets a share): wait for that pass, so its
            # first roster is whole. If the pass is slow, what it has now goes out, the rest follows.
            try:
                await asyncio.wait_for(self._rooms.request(session.event_id), SEAT_TIMEOUT_S)
            except (TimeoutError, NoRoom) as exc:
                log.warning("proctor %s synced before its allocation pass: %s", session.user_id, exc)
            return await self.proctor(conn, reason="join", always=True)
        return []
