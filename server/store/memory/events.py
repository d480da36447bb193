"""Events and counters in memory."""

from __future__ import annotations

from collections import defaultdict

from server.store.records import EventConfig


class MemoryEvents:
    def __init__(self) -> None:
        self._events: dict[str, EventConfig] = {}
        self._counters: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    async def create_event(self, config: EventConfig) -> bool:
        if config.event_id in self._events:
            return False
        self._events[config.event_id] = config
        return True

    async def get_event(self, event_id: str) -> EventConfig | None:
        return self._events.get(event_id)

    async def list_events(self) -> list[EventConfig]:
        return sorted(self._events.values(), key=lambda e: e.event_id)

    async def save_event(self, config: EventConfig) -> None:
        self._events[config.event_id] = config

    async def incr_counter(self, event_id: str, name: str, by: int = 1) -> int:
        self._counters[event_id][name] += by
        return self._counters[event_id][name]

    async def get_counters(self, event_id: str) -> dict[str, int]:
        return dict(self._counters.get(event_id, {}))
