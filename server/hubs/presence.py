"""Presence: sockets in, user presence out, announced to the event's watchers.

The store decides transitions atomically (several tabs, several nodes); this
module tells the store what happened, announces changes on the event's watch
topic, and runs the sweep that ends graces and releases the users of dead
nodes. Every change is announced by exactly one node: the one whose store
call made it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from contextvars import ContextVar

from server.background import Background, in_batches
from server.config import Settings
from server.hubs.connection import Connection
from server.hubs.fanout import Fanout
from server.protocol import CandidateStatus, Outbound
from server.store.presence import PresenceStore
from server.store.records import ConnRef, Transition, Tristate, UserRecord
from server.topics import admin_topic, watch_topic

log = logging.getLogger("proctorhub.hubs.presence")

HOLD_MAX_S = 0.25
"""The longest one change holds its announcements (`PresenceService.one_announcement`)."""


class _Held:
    """Announcements held back until the end of one change (`PresenceService.one_announcement`)."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], UserRecord] = {}
        self.open = True


_held: ContextVar[_Held | None] = ContextVar("proctorhub_held_announcements", default=None)


def candidate_status(record: UserRecord) -> CandidateStatus:
    return {
        "candidate_id": record.user_id,
        "name": record.name,
        "room_id": record.room_id,
        "presence": record.presence,
        "video": record.video,
        "recording": record.recording,
        "open_alerts": record.open_alerts,
        "flags": record.flags,
        "since": int(record.since * 1000),
    }


def status_message(record: UserRecord) -> Outbound:
    """`candidate.status` for candidates, `proctor.status` (extension) for proctors; coalesced per user."""
    if record.role == "candidate":
        return Outbound(
            "candidate.status", dict(candidate_status(record)), coalesce_key=f"cs:{record.user_id}"
        )
    data = {
        "user_id": record.user_id,
        "role": record.role,
        "name": record.name,
        "presence": record.presence,
        "since": int(record.since * 1000),
    }
    return Outbound("proctor.status", data, coalesce_key=f"ps:{record.user_id}")


class PresenceService:
    def __init__(
        self,
        settings: Settings,
        store: PresenceStore,
        fanout: Fanout,
        clock: Callable[[], float],
        background: Background,
    ) -> None:
        self._settings = settings
        self._store = store
        self._fanout = fanout
        self._clock = clock
        self._background = background
        """The hub's: a hold released late is its task, counted if it fails and cancelled at stop."""
        self._listeners: list[Callable[[UserRecord], None]] = []

    def on_change(self, listener: Callable[[UserRecord], None]) -> None:
        """Called with every record whose presence changed, on the node that changed it."""
        self._listeners.append(listener)

    def _ref(self, conn: Connection) -> ConnRef:
        event_id, user_id = conn.user_key
        return ConnRef(event_id, user_id, conn.conn_id, self._settings.node_id)

    async def joined(self, conn: Connection) -> UserRecord:
        session = conn.session
        if session is None:
            raise RuntimeError("Expected an authenticated connection, but got none")
        transition = await self._store.connect(
            self._ref(conn), role=session.role, name=session.name, now=self._clock()
        )
        await self._announce_if_changed(transition)
        return transition.record

    async def left(self, conn: Connection, at: float | None = None) -> None:
        """The socket closed (`at`, else now: a disconnect written again later keeps its moment)."""
        transition = await self._store.disconnect(
            self._ref(conn), now=self._clock() if at is None else at, grace_s=self._settings.presence_grace_s
        )
        await self._announce_if_changed(transition)

    async def finished(self, event_id: str, user_id: str) -> None:
        await self._announce_if_changed(await self._store.finish(event_id, user_id, now=self._clock()))

    async def video(self, event_id: str, user_id: str, video: Tristate) -> None:
        transition = await self._store.set_video(event_id, user_id, video)
        if transition is not None and transition.changed:
            await self.announce(transition.record)  # not a presence change: the listeners are not told

    async def _announce_if_changed(self, transition: Transition | None) -> None:
        if transition is not None and transition.changed:
            await self._presence_changed(transition.record)

    async def changed(self, records: list[UserRecord]) -> None:
        """Tell listeners and watchers of many presence changes (a node's release)."""
        await in_batches(self._presence_changed(r) for r in records)

    async def _presence_changed(self, record: UserRecord) -> None:
        for listener in self._listeners:
            listener(record)
        await self.announce(record)

    @asynccontextmanager
    async def one_announcement(self) -> AsyncIterator[None]:
        """Announce each user once, as its last record, for the several store writes of one change.

        A candidate's video report changes its video, then the recording monitor's status: two
        announcements would send every watcher a record whose video and recording disagree, and
        cost the event's whole fan-out twice. The monitor may first ask 100ms over the network:
        after HOLD_MAX_S what is held goes out, and later writes are announced as they come, as
        are those of tasks spawned inside once the scope has ended.
        """
        held = _Held()
        token = _held.set(held)
        timer = asyncio.get_running_loop().call_later(HOLD_MAX_S, self._release_late, held)
        try:
            yield
        finally:
            timer.cancel()
            _held.reset(token)
            await self._release(held)

    def _release_late(self, held: _Held) -> None:
        if held.records:
            self._background.spawn("held announcement", self._release(held))
        held.open = False

    async def _release(self, held: _Held) -> None:
        held.open = False
        records, held.records = held.records, {}
        for record in records.values():
            await self._publish(record)

    async def announce(self, record: UserRecord) -> None:
        """Tell the event's watchers the record as it is now (presence, room, media, alerts)."""
        held = _held.get()
        if held is not None and held.open:
            held.records[(record.event_id, record.user_id)] = record
            return
        await self._publish(record)

    async def _publish(self, record: UserRecord) -> None:
        if record.role == "candidate":
            await self._fanout.publish(watch_topic(record.event_id), status_message(record))
        elif record.role == "proctor":
            # Admins only: sent to every proctor, proctors coming and going would cost O(proctors²).
            await self._fanout.publish(admin_topic(record.event_id), status_message(record))

    async def sweep(self, connections: Iterable[Connection] = ()) -> None:
        """Renew this node's liveness, end graces, release the users of dead nodes.

        A node that stalled past its deadline was reaped by the others: its users went
        `reconnecting`. Its sockets are still open, so it registers them again.
        """
        now = self._clock()
        settings = self._settings
        registered = await self._store.node_alive(settings.node_id, now=now, until=now + settings.node_ttl_s)
        if not registered:
            live = [c for c in connections if c.session is not None]
            if live:
                log.warning(
                    "node %s was reaped while stalled; registering %d sockets again",
                    settings.node_id,
                    len(live),
                )
            for conn in live:
                await self.joined(conn)
        for record in await self._store.reap_dead_nodes(now=now, grace_s=settings.presence_grace_s):
            await self._presence_changed(record)
        for record in await self._store.expire_graces(now):
            await self._presence_changed(record)

    @property
    def sweep_interval_s(self) -> float:
        """Often enough to renew the node's liveness well within its TTL and to end graces on time."""
        settings = self._settings
        return min(1.0, settings.node_ttl_s / 4, max(0.1, settings.presence_grace_s / 4))
