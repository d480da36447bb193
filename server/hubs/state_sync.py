"""State sync: what a user is sent right after `hello`, on every (re)connect.

Not a replay of missed messages: each provider reads the current state and
returns the messages that carry it. PROTOCOL.md fixes the order: `room.assign`
(if assigned), then `roster` (proctor) or `event.stats` (admin). Later parts of
the hub (100ms tokens, allocation) register their providers with
`StateSync.add(provider, before=...)` to keep that order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from server.hubs.connection import Connection
from server.protocol import Outbound

if TYPE_CHECKING:
    from server.hubs.hub import Hub

StateProvider = Callable[["Hub", Connection], Awaitable[list[Outbound]]]


async def admin_stats(hub: Hub, conn: Connection) -> list[Outbound]:
    session = conn.session
    if session is None or session.role != "admin" or session.event_id == "*":
        return []
    return [await hub.stats.message(session.event_id)]


class StateSync:
    def __init__(self) -> None:
        self._providers: list[tuple[str, StateProvider]] = [("event.stats", admin_stats)]

    def add(
        self, name: str, provider: Callable[..., Awaitable[list[Outbound]]], *, before: str | None = None
    ) -> None:
        """Register a provider, e.g. `add("room.assign", rooms, before="event.stats")`."""
        index = len(self._providers)
        if before is not None:
            index = next(i for i, (n, _) in enumerate(self._providers) if n == before)
        self._providers.insert(index, (name, provider))

    async def messages(self, hub: Hub, conn: Connection) -> list[Outbound]:
        out: list[Outbound] = []
        for _, provider in self._providers:
            out.extend(await provider(hub, conn))
        return out
