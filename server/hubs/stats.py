"""Live `event.stats` for admins: counted from the store, pushed at most once per interval.

An event is recounted only when something was announced on its watch topic
since the last push, so a quiet event costs nothing; and the counts go out only when they differ
from the last ones pushed: most announcements (a camera toggled, a token refreshed elsewhere) change
no count, and re-sending the same numbers to every admin doubled the cost of the fan-out that
caused them.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from typing import Any

from server.hubs.connection import Connection
from server.hubs.fanout import Fanout
from server.hubs.snapshots import UserSnapshots
from server.protocol import EventStats, Outbound
from server.store.allocation import AllocationStore
from server.store.events import EventStore
from server.store.records import RoomRecord, UserRecord
from server.topics import event_wide

log = logging.getLogger("proctorhub.hubs.stats")


def event_stats(
    event_id: str,
    users: list[UserRecord],
    rooms: list[RoomRecord],
    allocation: dict[str, Any],
    counters: dict[str, int],
) -> EventStats:
    """Counts for one event (pure). A room is unwatched when a candidate who has not finished sits
    in it and none of its proctors is present."""
    candidates = Counter(u.presence for u in users if u.role == "candidate")
    present = {u.user_id for u in users if u.role == "proctor" and u.presence in ("online", "reconnecting")}
    meta = allocation.get("rooms", {})
    seated = {u.room_id for u in users if u.role == "candidate" and u.room_id and u.presence != "finished"}
    open_rooms = [r.room_id for r in rooms if meta.get(r.room_id, {}).get("open", True)]
    unwatched = [
        r for r in open_rooms if r in seated and not present.intersection(meta.get(r, {}).get("proctors", ()))
    ]
    return {
        "event_id": event_id,
        "online": candidates["online"],
        "reconnecting": candidates["reconnecting"],
        "offline": candidates["offline"],
        "finished": candidates["finished"],
        "proctors": sum(1 for u in users if u.role == "proctor" and u.presence == "online"),
        "rooms": len(open_rooms),
        "unwatched_rooms": len(unwatched),
        "open_alerts": counters.get("open_alerts", 0),
        "tokens_refreshed": counters.get("tokens_refreshed", 0),
    }


class StatsPublisher:
    def __init__(
        self,
        allocation: AllocationStore,
        events: EventStore,
        fanout: Fanout,
        snapshots: UserSnapshots,
        interval_s: float,
    ) -> None:
        self._allocation = allocation
        self._events = events
        self._snapshots = snapshots
        self._interval_s = interval_s
        self._subscribers: dict[str, set[Connection]] = defaultdict(set)
        self._dirty: set[str] = set()
        self._pushed: dict[str, dict[str, Any]] = {}
        """event -> the counts last pushed to its subscribers (each got them, or newer, at subscribe)."""
        fanout.observe(self._observe)

    def _observe(self, topic: str, message: Outbound) -> None:
        event_id = event_wide(topic)
        if event_id is not None:
            self._dirty.add(event_id)

    async def message(self, event_id: str, *, re: int | None = None) -> Outbound:
        stats = event_stats(
            event_id,
            await self._snapshots.users(event_id),
            await self._allocation.list_rooms(event_id),
            await self._allocation.load_allocation(event_id),
            await self._events.get_counters(event_id),
        )
        return Outbound("event.stats", dict(stats), re=re, coalesce_key=f"stats:{event_id}")

    async def state(self, conn: Connection) -> list[Outbound]:
        """State-sync provider: an admin of one event gets its `event.stats` right after `hello`."""
        session = conn.session
        if session is None or session.role != "admin" or session.event_id == "*":
            return []
        return [await self.message(session.event_id)]

    def subscribe(self, conn: Connection, event_id: str) -> None:
        self._subscribers[event_id].add(conn)
        self._pushed.pop(event_id, None)  # its first counts may be read before or after the next push

    def unsubscribe_all(self, conn: Connection) -> None:
        for event_id in [e for e, conns in self._subscribers.items() if conn in conns]:
            conns = self._subscribers[event_id]
            conns.discard(conn)
            if not conns:
                del self._subscribers[event_id]
                self._pushed.pop(event_id, None)

    async def push_dirty(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for event_id in dirty:
            conns = self._subscribers.get(event_id)
            if not conns:
                continue
            message = await self.message(event_id)
            if self._pushed.get(event_id) == message.data:
                continue
            self._pushed[event_id] = message.data
            for conn in list(conns):
                conn.send(message)
