"""The hub of one node: connections, presence, fan-out, stats and timers wired together."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from server.allocation.service import AllocationService, RoomFactory
from server.auth import InvalidSession, Session
from server.background import Background
from server.config import Settings
from server.errors import Answer, Close, Draining, NotAuthenticated, SlowConsumer
from server.hubs.admission import JoinGate
from server.hubs.assignment import Assigner
from server.hubs.connection import Connection, ConnectionState, NowWriter
from server.hubs.fanout import Fanout
from server.hubs.handlers import Handlers, MediaLimits
from server.hubs.leaves import RETRY_S, PendingLeaves
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
from server.verifier import SessionVerifier

log = logging.getLogger("proctorhub.hubs.hub")


class Hub:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        room_factory: RoomFactory,
        metrics: HubMetrics | None = None,
        clock: Callable[[], float] = time.time,
        verifier: SessionVerifier | None = None,
    ) -> None:
        self.settings = settings
        self.verifier = verifier or SessionVerifier(settings, clock=clock)
        self.store = store
        self.metrics = metrics = metrics or HubMetrics()
        self.clock = clock
        self.background = Background(log, on_failure=metrics.background_failed)
        self.fanout = Fanout(store.pubsub, metrics)
        self.presence = PresenceService(settings, store.presence, self.fanout, clock, self.background)
        self.snapshots = UserSnapshots(store.presence, self.fanout)
        self.stats = StatsPublisher(
            store.allocation, store.events, self.fanout, self.snapshots, settings.stats_interval_s
        )
        self.timers = TimerLoop(clock)
        self.tokens = TokenKeeper(
            settings, store.tokens, store.events, metrics, self.timers, clock, spawn=self.spawn
        )
        self.rooms = AllocationService(
            store,
            room_factory,
            prefix=settings.hms_room_prefix,
            node_id=settings.node_id,
            clock=clock,
            notify=lambda outcome: self.seating.allocated(outcome),
            feed=self.snapshots,
            background=self.background,
            counted=self._count_allocation,
        )
        self.seating = Seating(
            fanout=self.fanout,
            rooms=self.rooms,
            assigner=Assigner(store.presence, store.events, self.rooms, self.tokens, self.snapshots),
            announce=self.presence.announce,
            current=store.presence.get_user,
            timers=self.timers,
            clock=clock,
            spawn=self.spawn,
            metrics=metrics,
        )
        self.presence.on_change(self.seating.presence_changed)
        self.state_sync = StateSync(self.stats.state)
        self.state_sync.add("room.assign", self.seating.assign_or_retry, before="event.stats")
        self.handlers = Handlers(
            users=store.presence,
            fanout=self.fanout,
            presence=self.presence,
            tokens=self.tokens,
            stats=self.stats,
            renew=self.renew_session,
            clock=clock,
            timers=self.timers,
            spawn=self.spawn,
            media_limits=MediaLimits(settings.media_burst, settings.media_refill_s),
        )
        self.join_gate = JoinGate(
            settings.join_concurrency, settings.join_deadline_s, metrics.joins_refused.inc
        )
        metrics.joins_waiting.set_function(lambda: self.join_gate.waiting)
        metrics.joins_running.set_function(lambda: self.join_gate.running)
        self.leaves = PendingLeaves(self._record_leave)
        metrics.disconnects_unrecorded.set_function(lambda: len(self.leaves))
        self.draining = False
        self.connections: dict[str, Connection] = {}
        self._session_timers: dict[str, list[Timer]] = {}
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.fanout.start(self.settings.node_id)
        self.rooms.start()
        await self.presence.sweep()
        bg = self.background
        bg.every(
            "presence sweep",
            self.presence.sweep_interval_s,
            lambda: self.presence.sweep(list(self.connections.values())),
        )
        bg.every("event stats", self.settings.stats_interval_s, self.stats.push_dirty)
        bg.every("unrecorded disconnects", RETRY_S, self.leaves.retry)
        bg.every("stuck sends", min(1.0, self.settings.send_timeout_s / 4), self._close_stuck_sends)
        bg.run("timers", self.timers.run)

    def begin_drain(self) -> None:
        """The node is going (SIGTERM): refuse new sockets; the ones closing from now on are handed
        back to the store all at once by `stop` instead of one write each."""
        self.draining = True

    async def drain(self) -> None:
        """Refuse new sockets and close the open ones with 1012 so clients move to another node."""
        self.begin_drain()
        closing = Draining("node draining")
        await asyncio.gather(*(self.close(c, closing) for c in list(self.connections.values())))
        for _ in range(50):
            if not self.connections:
                break
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Drain, hand this node's sockets and leases back in one step each, stop the loops."""
        await self.drain()
        await self.rooms.stop()
        settings = self.settings
        released = await self.store.presence.release_node(
            settings.node_id, now=self.clock(), grace_s=settings.presence_grace_s
        )
        self.leaves.forget()
        await self.presence.changed(released)
        await self.background.stop()

    # ------------------------------------------------------------------ connections

    def new_connection(self, send: Any, codec: Codec, now_writer: NowWriter | None = None) -> Connection:
        conn_id = f"{self.settings.node_id}/{next(self._ids)}"
        return Connection(
            conn_id,
            send,
            codec,
            queue_size=self.settings.send_queue_size,
            send_timeout_s=self.settings.send_timeout_s,
            on_overflow=self._overflowed,
            on_sent=self.metrics.sent,
            now_writer=now_writer,
        )

    async def _close_stuck_sends(self) -> None:
        """The sends' watchdog: one look at every socket, instead of a timer per message sent."""
        now = time.monotonic()
        for conn in list(self.connections.values()):
            conn.stuck(now)

    def _overflowed(self, conn: Connection) -> None:
        self.metrics.send_queue_drops.inc()
        self.spawn(self.close(conn, SlowConsumer("slow consumer: send queue full")), "close")

    async def close(self, conn: Connection, error: Close) -> None:
        """Close a socket with the code of `error` (the error tree is the one source of close codes)."""
        self.metrics.closed(error.code)
        await conn.close(error.code, error.message)

    async def attach(self, conn: Connection, session: Session) -> None:
        """Register an authenticated socket, greet it and send its whole state."""
        conn.open(session)
        conn.hold()  # live messages wait for the greeting: the state sync keeps its documented order
        self.connections[conn.conn_id] = conn
        self.metrics.connections.labels(session.role).inc()
        conn.joined = await self.presence.joined(conn)
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
            ),
            first=True,
        )
        synced = await self.state_sync.messages(conn)
        for message in synced:
            conn.send(message, first=True)
        conn.unhold(synced)
        conn.joined = None
        conn.synced = True
        if conn.stale:
            self.spawn(self.seating.reassign(conn), "reassign")
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
        await self.leaves.leave(conn, self.clock())

    async def _record_leave(self, conn: Connection, left_at: float) -> None:
        await self.fanout.leave_all(conn)
        if not self.draining:  # when draining, `stop` releases every socket of the node at once
            await self.presence.left(conn, at=left_at)

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
                self.spawn(self.close(conn, NotAuthenticated("session expired")), "close")

        self._session_timers[conn.conn_id] = [
            self.timers.call_at(warn_at, warn),
            self.timers.call_at(exp, expire),
        ]

    async def verify(self, token: object) -> Session:
        """The session a host-app token proves; `InvalidSession` says why not."""
        return await self.verifier.verify(token)

    async def renew_session(self, conn: Connection, token: str) -> Session:
        """`auth.refresh`: a newer token for the same sub, event and role replaces the socket's session."""
        current = conn.session
        try:
            fresh = await self.verify(token)
        except InvalidSession as exc:
            raise Answer("invalid_token", str(exc)) from None
        if current is None or (fresh.user_id, fresh.event_id, fresh.role) != (
            current.user_id,
            current.event_id,
            current.role,
        ):
            raise Answer("session_mismatch", "auth.refresh needs a token for the same sub, event and role")
        conn.session = fresh
        self._schedule_expiry(conn, fresh)
        return fresh

    def _count_allocation(self, what: str) -> None:
        counter = self.metrics.allocation_passes if what == "pass" else self.metrics.allocation_lock_waits
        counter.inc()

    def spawn(self, coro: Coroutine[Any, Any, object], name: str = "hub task") -> None:
        """Run a coroutine in the background; its failure is logged and counted, never lost."""
        self.background.spawn(name, coro)
