"""State sync: what a user is sent right after `hello`, on every (re)connect.

Not a replay of missed messages: each provider reads the current state and
returns the messages that carry it. docs/protocol.md fixes the order: `room.assign`
(if assigned), then `roster` (proctor) or `event.stats` (admin). Later parts of
the hub (100ms tokens, allocation) register their providers with
`StateSync.add(provider, before=...)` to keep that order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from server.hubs.connection import Connection
from server.protocol import Outbound

log = logging.getLogger("proctorhub.hubs.state_sync")

StateProvider = Callable[[Connection], Awaitable[list[Outbound]]]


class StateSync:
    def __init__(self, admin_stats: StateProvider) -> None:
        self._providers: list[tuple[str, StateProvider, bool]] = [("event.stats", admin_stats, False)]

    def add(
        self, name: str, provider: StateProvider, *, before: str | None = None, independent: bool = False
    ) -> None:
        """Register a provider, e.g. `add("room.assign", rooms, before="event.stats")`.

        `independent`: it reads nothing the providers before it change (a proctor's alerts do read the
        rooms its `room.assign` pass gave it), so it starts with the first one instead of after them: on
        Redis its round trips then overlap theirs. Its messages keep their place in the order."""
        index = len(self._providers)
        if before is not None:
            index = next(i for i, (n, _, _) in enumerate(self._providers) if n == before)
        self._providers.insert(index, (name, provider, independent))

    async def messages(self, conn: Connection) -> list[Outbound]:
        """Every provider's messages, in the providers' order. The independent ones read in tasks of
        a task group from the start: the first failure anywhere stops the others and is raised as
        itself (not as the group; the caller logs it), a failure beside it is logged here, and a
        cancelled sync leaves no provider running."""
        try:
            async with asyncio.TaskGroup() as group:
                early = {
                    name: group.create_task(p(conn), name=f"state sync {name}")
                    for name, p, independent in self._providers
                    if independent
                }
                out: list[Outbound] = []
                for name, provider, independent in self._providers:
                    out.extend(await early[name] if independent else await provider(conn))
        except BaseExceptionGroup as failed:
            first, *others = failed.exceptions
            for other in others:
                log.warning("state sync: another provider failed too: %r", other)
            raise first from None
        return out
