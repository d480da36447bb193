"""State sync: what a user is sent right after `hello`, on every (re)connect.

Not a replay of missed messages: each provider reads the current state and
returns the messages that carry it. docs/protocol.md fixes the order: `room.assign`
(if assigned), then `roster` (proctor) or `event.stats` (admin). Later parts of
the hub (100ms tokens, allocation) register their providers with
`StateSync.add(provider, before=...)` to keep that order.
"""

from __future__ import annotations

import asyncio
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
        """Every provider's messages, in the providers' order. They read at the same time: on Redis each
        waits on its own round trips, and `room.assign` should not wait on the backfill's read too.
        The first runs in the caller's task, the others in tasks of their own (cancelled if one fails)."""
        first, *rest = (provider for _, provider in self._providers)
        others = [asyncio.ensure_future(provider(conn)) for provider in rest]
        try:
            out = list(await first(conn))
            for messages in await asyncio.gather(*others):
                out.extend(messages)
        except BaseException:
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            raise
        return out
