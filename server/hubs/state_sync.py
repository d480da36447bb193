"""State sync: what a user is sent right after `hello`, on every (re)connect.

Not a replay of missed messages: each provider reads the current state and
returns the messages that carry it. docs/protocol.md fixes the order: `room.assign`
(if assigned), then `roster` (proctor) or `event.stats` (admin). Later parts of
the hub (100ms tokens, allocation) register their providers with
`StateSync.add(provider, before=...)` to keep that order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from server.hubs.connection import Connection
from server.protocol import Outbound

StateProvider = Callable[[Connection], Awaitable[list[Outbound]]]


class StateSync:
    def __init__(self, admin_stats: StateProvider) -> None:
        self._providers: list[tuple[str, StateProvider]] = [("event.stats", admin_stats)]

    def add(self, name: str, provider: StateProvider, *, before: str | None = None) -> None:
        """Register a provider, e.g. `add("room.assign", rooms, before="event.stats")`."""
        index = len(self._providers)
        if before is not None:
            index = next(i for i, (n, _) in enumerate(self._providers) if n == before)
        self._providers.insert(index, (name, provider))

    async def messages(self, conn: Connection) -> list[Outbound]:
        out: list[Outbound] = []
        for _, provider in self._providers:
            out.extend(await provider(conn))
        return out
