"""Events (exam sittings): their configuration, and counters kept per event."""

from __future__ import annotations

from typing import Protocol

from server.store.records import EventConfig


class EventStore(Protocol):
    async def create_event(self, config: EventConfig) -> bool:
        """Store a new event; False (and nothing written) if the id exists."""

    async def get_event(self, event_id: str) -> EventConfig | None: ...
    async def list_events(self) -> list[EventConfig]: ...
    async def save_event(self, config: EventConfig) -> None: ...
    async def incr_counter(self, event_id: str, name: str, by: int = 1) -> int: ...
    async def get_counters(self, event_id: str) -> dict[str, int]: ...
