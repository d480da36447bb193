"""`room.assign` for a socket: the user's room(s) with a fresh 100ms token each.

Used by the state sync on every (re)connect and when the rooms of an event
change. A candidate gets its one room; a proctor every room it watches. Each
token sent is then kept fresh by the `TokenKeeper`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from server.hubs.connection import Connection
from server.hubs.tokens import TokenAck
from server.protocol import Outbound
from server.store.base import HeldToken, RoomRecord

if TYPE_CHECKING:
    from server.hubs.hub import Hub

log = logging.getLogger("proctorhub.hubs.assignment")


async def _token(hub: Hub, conn: Connection, room: RoomRecord, lifetime_s: float) -> HeldToken:
    session = conn.session
    if session is None:
        raise RuntimeError("Expected an authenticated connection, but got none")
    key = (session.event_id, session.user_id, room.room_id)
    token = await hub.tokens.token_for(key, role=session.role, lifetime_s=lifetime_s)
    hub.tokens.hold(conn, key, token, role=session.role, lifetime_s=lifetime_s)
    return token


def _entry(room: RoomRecord, token: HeldToken) -> dict[str, object]:
    return {
        "room_id": room.room_id,
        "room_name": room.name,
        "hms_token": token.token,
        "token_exp": int(token.exp),
    }


async def candidate_assignment(hub: Hub, conn: Connection) -> Outbound | None:
    session = conn.session
    if session is None:
        return None
    record = await hub.store.get_user(session.event_id, session.user_id)
    if record is not None and record.presence == "finished":
        return None
    room, placed = await hub.rooms.room_for_candidate(session.event_id, session.user_id)
    if placed:
        seated = await hub.store.get_user(session.event_id, session.user_id)
        if seated is not None:
            await hub.presence.announce(seated)  # proctors see the candidate's room
    event = await hub.rooms.event(session.event_id)
    token = await _token(hub, conn, room, event.token_ttl_s)
    data = {**_entry(room, token), "reason": "join" if placed else "recovery"}
    return Outbound("room.assign", data, ack_key=TokenAck(((room.room_id, token.jti, token.exp),)))


async def proctor_assignment(hub: Hub, conn: Connection, *, reason: str) -> Outbound | None:
    session = conn.session
    if session is None:
        return None
    rooms = await hub.rooms.rooms_for_proctor(session.event_id)
    if not rooms:
        return None
    event = await hub.rooms.event(session.event_id)
    entries = []
    acks = []
    for room in rooms:
        token = await _token(hub, conn, room, event.token_ttl_s)
        entries.append(_entry(room, token))
        acks.append((room.room_id, token.jti, token.exp))
    return Outbound("room.assign", {"rooms": entries, "reason": reason}, ack_key=TokenAck(tuple(acks)))


async def room_assign(hub: Hub, conn: Connection) -> list[Outbound]:
    """State-sync provider: what the socket's user is assigned, with tokens."""
    session = conn.session
    if session is None or session.event_id == "*":
        return []
    if session.role == "candidate":
        message = await candidate_assignment(hub, conn)
    elif session.role == "proctor":
        message = await proctor_assignment(hub, conn, reason="join")
    else:
        return []
    return [] if message is None else [message]
