"""Whose room is it: this hub's (`{HMS_ROOM_PREFIX}-{event}-{n}`), another environment's (relay), or
nobody's we know (foreign). Recording events carry only the room id: its name is learnt from earlier
events that carry both (kept in the store, so every node knows it), else asked of 100ms."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from server.hms.client import HmsClient
from server.hms.errors import HmsNotFound
from server.recording.intake.envelope import Envelope
from server.store.webhooks import WebhookQueue

log = logging.getLogger("proctorhub.recording.rooms")

CACHE_ROOMS = 50_000


@dataclass(frozen=True)
class Owner:
    kind: Literal["own", "relay", "foreign"]
    prefix: str | None = None
    url: str | None = None


FOREIGN = Owner("foreign")


class RoomRouter:
    """Room name -> owner by prefix: `{prefix}-...` (or the prefix itself); the longest prefix wins, so
    `proctorhub-staging` can be relayed while `proctorhub` is ours."""

    def __init__(self, own_prefix: str, relays: Sequence[tuple[str, str]]) -> None:
        owners = [(own_prefix, Owner("own", own_prefix)), *((p, Owner("relay", p, u)) for p, u in relays)]
        self._owners = sorted(owners, key=lambda pair: len(pair[0]), reverse=True)

    def owner(self, room_name: str | None) -> Owner:
        if room_name:
            for prefix, owner in self._owners:
                if room_name == prefix or room_name.startswith(f"{prefix}-"):
                    return owner
        return FOREIGN


class RoomDirectory:
    """100ms room id -> name, with a local cache in front of the store."""

    def __init__(self, queue: WebhookQueue, client: HmsClient | None) -> None:
        self._queue = queue
        self._client = client
        self._cache: dict[str, str] = {}

    async def learn(self, envelope: Envelope) -> None:
        room_id, name = envelope.room_id, envelope.room_name
        if room_id and name and self._cache.get(room_id) != name:
            await self._queue.remember_room_name(room_id, name)
            self._keep(room_id, name)

    async def name_of(self, envelope: Envelope) -> str | None:
        """The event's room name: its own field, else what the store or 100ms knows; None if none."""
        if envelope.room_name or not envelope.room_id:
            return envelope.room_name
        room_id = envelope.room_id
        name = self._cache.get(room_id) or await self._queue.room_name_of(room_id)
        if name is None and self._client is not None:
            try:
                name = (await self._client.get_room(room_id)).name
            except HmsNotFound:
                log.info("room %s of webhook %s %s is unknown to 100ms", room_id, envelope.type, envelope.id)
                return None
            await self._queue.remember_room_name(room_id, name)
        if name is not None:
            self._keep(room_id, name)
        return name

    def _keep(self, room_id: str, name: str) -> None:
        if len(self._cache) >= CACHE_ROOMS:
            self._cache.clear()
        self._cache[room_id] = name
