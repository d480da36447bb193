"""The simulated workspace's state: rooms, sessions, peers and recording assets, in creation order.

Mutated only from the event loop (no awaits inside a change), so it needs no locks.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from server.hms.simulator.config import new_id
from server.hms.simulator.errors import bad_request, not_found
from server.hms.simulator.models import Asset, Peer, Room, Session


class Workspace:
    def __init__(self, *, template_id: str, template_region: str) -> None:
        self.template_id = template_id
        self.template_region = template_region
        self.rooms: dict[str, Room] = {}
        self.sessions: dict[str, Session] = {}
        self.peers: dict[str, Peer] = {}
        self.assets: dict[str, Asset] = {}
        self._by_name: dict[str, str] = {}
        self._rank: dict[str, int] = {}
        self._counter = itertools.count()

    def rank(self, ident: str) -> int | None:
        """Creation rank of any object id (for pagination cursors)."""
        return self._rank.get(ident)

    def _ranked(self, ident: str) -> str:
        self._rank[ident] = next(self._counter)
        return ident

    # rooms

    def room(self, room_id: str) -> Room:
        room = self.rooms.get(room_id)
        if room is None:
            raise not_found("room not found")
        return room

    def room_by_name(self, name: str) -> Room | None:
        room_id = self._by_name.get(name.lower())
        return None if room_id is None else self.rooms[room_id]

    def upsert_room(self, fields: dict[str, Any], *, now: float) -> Room:
        """Create a room, or update the one with this name (case-insensitive): contract §2.2, §5 item 10."""
        fields = dict(fields)
        name = fields.pop("name", None) or str(uuid.uuid4())
        existing = self.room_by_name(name)
        if existing is not None:
            return self.update_room(existing, fields, now=now)
        room = Room(
            id=self._ranked(new_id()),
            name=name,
            template_id=fields.pop("template_id", self.template_id),
            region=fields.pop("region", self.template_region),
            created_at=now,
            updated_at=now,
        )
        for key, value in fields.items():
            setattr(room, key, value)
        self.rooms[room.id] = room
        self._by_name[name.lower()] = room.id
        return room

    def update_room(self, room: Room, fields: dict[str, Any], *, now: float) -> Room:
        name = fields.get("name")
        if name is not None and name.lower() != room.name.lower():
            if self.room_by_name(name) is not None:
                raise bad_request("Invalid body param: name", f"a room named {name!r} already exists")
            del self._by_name[room.name.lower()]
            self._by_name[name.lower()] = room.id
        for key, value in fields.items():
            setattr(room, key, value)
        room.updated_at = now
        return room

    # sessions and peers

    def open_session(self, room: Room, *, now: float) -> Session:
        session = Session(id=self._ranked(new_id()), room_id=room.id, created_at=now, updated_at=now)
        self.sessions[session.id] = session
        room.active_session_id = session.id
        return session

    def active_session(self, room: Room) -> Session | None:
        return None if room.active_session_id is None else self.sessions[room.active_session_id]

    def session(self, session_id: str) -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            raise not_found("session not found")
        return session

    def add_peer(self, peer: Peer) -> Peer:
        self.peers[peer.id] = peer
        self.sessions[peer.session_id].peers[peer.id] = peer
        return peer

    def peer(self, peer_id: str) -> Peer:
        peer = self.peers.get(peer_id)
        if peer is None:
            raise not_found("peer not found")
        return peer

    # recording assets

    def add_asset(self, asset: Asset) -> Asset:
        self._ranked(asset.id)
        self.assets[asset.id] = asset
        return asset

    def asset(self, asset_id: str) -> Asset:
        asset = self.assets.get(asset_id)
        if asset is None:
            raise not_found("recording asset not found")
        return asset
