"""The hub of one node: connections, presence, fan-out, stats and timers wired together."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from server.allocation.service import AllocationService, RoomFactory
from server.auth import Session
from server.config import Settings
from server.hubs.connection import Connection, ConnectionState
from server.hubs.fanout import Fanout
from server.hubs.presence import PresenceService
from server.hubs.seating import Seating
from server.hubs.snapshots import UserSnapshots
from server.hubs.state_sync import StateSync
from server.hubs.stats import StatsPublisher
from server.hubs.timers import Timer, TimerLoop
from server.hubs.tokens import TokenKeeper
from server.metrics import HubMetrics
from server.protocol import Codec, Outbound
from server.store.base import Store
from server.topics import admin_topic, user_topic, watch_topic

log = logging.getLogger("proctorhub.hubs.hub")

MediaObserver = Callable[[str, str, dict[str, Any], str], Awaitable[None]]


class Hub:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        room_factory: RoomFactory,
        metrics: HubMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics or HubMetrics()
        self.clock = clock
        self.fanout = Fanout(store, self.metrics)
        self.presence = PresenceService(settings, store, self.fanout, clock)
        self.snapshots = UserSnapshots(store, self.fanout)
        self.stats = StatsPublisher(store, self.fanout, self.snapshots, settings.stats_interval_s)
        self.timers = TimerLoop(clock)
        self.tokens = TokenKeeper(settings, store, self.metrics, self.timers, clock)
        self.seating = Seating(self)
        self.rooms = AllocationService(
            store,
            room_factory,
            prefix=settings.hms_room_prefix,
            owner=settings.node_id,
            clock=clock,
            notify=self.seating.allocated,
            counted=self._count_allocation,
        )
        self.presence.on_change(self.seating.presence_changed)
        self.state_sync = StateSync()
        self.state_sync.add("room.assign", self.seating.assign_or_retry, before="event.stats")
        self.media_observers: list[MediaObserver] = []
        """Called with (event, candidate, media.status data, source) for every candidate report."""
        self.flag_observers: list[Callable[[str, str], None]] = []
        """Called with (event, candidate) after a flag was stored."""
        self.draining = False
        self.connections: dict[str, Connection] = {}
        self._session_timers: dict[str, list[Timer]] = {}
        self._ids = itertools.count(1)
        self._tasks: list[asyncio.Task[None]] = []
        self._closing: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.presence.sweep()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self.presence.run(self.connections.values), name="presence-sweep"),
            loop.create_task(self.stats.run(), name="event-stats"),
            loop.create_task(self.timers.run(), name="timers"),
        ]

    async def drain(self) -> None:
        """Refuse new sockets and close the open ones with 1012 so clients move to another node."""
        self.draining = True
        await asyncio.gather(*(c.close(1012, "node draining") for c in list(self.connections.values())))
        for _ in range(50):
            if not self.connections:
                break
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        await self.drain()
        await self.tokens.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.store.node_gone(self.settings.node_id)

    # ------------------------------------------------------------------ connections

    def new_connection(self, send: Any, codec: Codec) -> Connection:
        conn_id = f"{self.settings.node_id}/{next(self._ids)}"
        return Connection(
            conn_id,
            send,
            codec,
            queue_size=self.settings.send_queue_size,
            send_timeout_s=self.settings.send_timeout_s,
            on_overflow=self._overflowed,
            on_sent=self.metrics.sent,
        )

    def _overflowed(self, conn: Connection) -> None:
        self.metrics.send_queue_drops.inc()
        self.metrics.closed(1013)
        self._spawn_close(conn, 1013, "slow consumer: send queue full")

    def _spawn_close(self, conn: Connection, code: int, reason: str) -> None:
        self.spawn(conn.close(code, reason))

    async def attach(self, conn: Connection, session: Session) -> None:
        """Register an authenticated socket, greet it and send its whole state."""
        conn.open(session)
        self.connections[conn.conn_id] = conn
        self.metrics.connections.labels(session.role).inc()
        await self.presence.joined(conn)
        await self.fanout.join(conn, user_topic(session.event_id, session.user_id))
        if session.role in ("proctor", "admin") and session.event_id != "*":
            await self.fanout.join(conn, watch_topic(session.event_id))
        if session.role == "admin" and session.event_id != "*":
            await self.fanout.join(conn, admin_topic(session.event_id))
            self.stats.subscribe(conn, session.event_id)
        conn.send(
            Outbound(
                "hello",
                {
                    "session_id": conn.conn_id,
                    "user_id": session.user_id,
                    "event_id": session.event_id,
                    "role": session.role,
                    "node": self.settings.node_id,
                    "heartbeat_s": self.settings.heartbeat_s,
                    "server_time": int(self.clock() * 1000),
                },
            )
        )
        for message in await self.state_sync.messages(self, conn):
            conn.send(message)
        conn.synced = True
        if conn.stale:
            self.spawn(self.seating.reassign(conn))
        self._schedule_expiry(conn, session)

    async def detach(self, conn: Connection) -> None:
        for timer in self._session_timers.pop(conn.conn_id, ()):
            timer.cancel()
        was_open = self.connections.pop(conn.conn_id, None) is not None
        conn.closed()
        if not was_open or conn.session is None:
            return
        self.metrics.connections.labels(conn.session.role).dec()
        self.tokens.release(conn)
        self.stats.unsubscribe_all(conn)
        try:
            await self.fanout.leave_all(conn)
            await self.presence.left(conn)
        except (OSError, ConnectionError) as exc:
            log.warning("could not record the disconnect of %s: %s", conn.conn_id, exc)

    # ------------------------------------------------------------------ sessions

    def _schedule_expiry(self, conn: Connection, session: Session) -> None:
        for timer in self._session_timers.pop(conn.conn_id, ()):
            timer.cancel()
        warn_at = max(self.clock(), session.exp - self.settings.session_warn_s)
        exp = session.exp

        def warn() -> None:
            if conn.state is ConnectionState.OPEN:
                conn.send(Outbound("session.expiring", {"exp": int(exp)}))

        def expire() -> None:
            if conn.state is ConnectionState.OPEN:
                self.metrics.closed(4401)
                self._spawn_close(conn, 4401, "session expired")

        self._session_timers[conn.conn_id] = [
            self.timers.call_at(warn_at, warn),
            self.timers.call_at(exp, expire),
        ]

    def renew_session(self, conn: Connection, session: Session) -> None:
        conn.session = session
        self._schedule_expiry(conn, session)

    def _count_allocation(self, what: str) -> None:
        counter = self.metrics.allocation_passes if what == "pass" else self.metrics.allocation_lock_waits
        counter.inc()

    def spawn(self, coro: object) -> None:
        """Run a coroutine in the background, keeping a reference until it ends."""
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
