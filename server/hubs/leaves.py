"""Disconnects the store could not take when they happened, written again until it does.

A socket that closes while the store is unreachable or overloaded (a pool that stays dry for its
timeout during a mass disconnect) must not leave its user `online` for as long as this node lives:
only a dead node's sockets are ever reaped. So a failed write is kept here with the moment the
socket closed, and the hub's loop writes it again, dated at that moment, until the store takes it.
A node that stops hands all its sockets back at once (`release_node`), these included.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from server.background import Outage
from server.hubs.connection import Connection

log = logging.getLogger("proctorhub.hubs.leaves")

RETRY_S = 1.0
"""How often the hub's loop writes the waiting disconnects again."""

Record = Callable[[Connection, float], Awaitable[None]]


class PendingLeaves:
    def __init__(self, record: Record) -> None:
        self._record = record
        self._waiting: dict[str, tuple[Connection, float]] = {}
        self._outage = Outage(log, "recording disconnects")

    def __len__(self) -> int:
        return len(self._waiting)

    async def leave(self, conn: Connection, left_at: float) -> None:
        """Record a disconnect now, or keep it for `retry` if the store fails."""
        try:
            await self._record(conn, left_at)
        except Exception as exc:
            self._outage.failed(exc)
            self._waiting[conn.conn_id] = (conn, left_at)

    async def retry(self) -> None:
        """Write the waiting disconnects, oldest first, until one fails (the store is still down)."""
        for conn_id, (conn, left_at) in list(self._waiting.items()):
            try:
                await self._record(conn, left_at)
            except Exception as exc:
                self._outage.failed(exc)
                return
            del self._waiting[conn_id]
        if self._outage.ongoing:
            self._outage.recovered()

    def forget(self) -> None:
        """The node is stopping: `release_node` hands every socket of it back at once."""
        self._waiting.clear()
