"""What the hub does with each client message after the handshake: typed dispatch.

`Handlers.table` maps a message type to the roles allowed to send it and the
coroutine that handles it. A role not listed gets 4403; a type not listed gets
`error {code: "unknown_type"}`. Handlers raise `Answer` for a refusal the
client can recover from.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from server.auth import Session
from server.errors import Answer, Forbidden
from server.hubs.connection import Connection
from server.hubs.fanout import Fanout
from server.hubs.media_gate import GateCore, MediaGate
from server.hubs.presence import PresenceService, status_message
from server.hubs.stats import StatsPublisher
from server.hubs.timers import TimerLoop
from server.hubs.tokens import TokenKeeper
from server.protocol import ClientMessage, Outbound, Tristate
from server.store.presence import PresenceStore
from server.store.records import FlagRecord
from server.topics import admin_topic, user_topic, watch_topic

HandlerFn = Callable[[Connection, ClientMessage], Awaitable[None]]
MediaObserver = Callable[[str, str, dict[str, Any], str], Awaitable[None]]
"""Called with (event, candidate, media.status data, source) for every change a candidate reports."""
LocalObserver = Callable[[str, str, dict[str, Any]], Awaitable[None]]
"""Called with (event, candidate, `media.status.local`) when the page's `local.from` changes (E15)."""
ObservedObserver = Callable[[str, str, str, bool | None], Awaitable[None]]
"""Called with (event, candidate, proctor, video) for every change of what a proctor's page sees
(video None: it stopped watching the candidate)."""
FlagObserver = Callable[[FlagRecord], None]
"""Called with each flag after it was stored."""
Renew = Callable[[Connection, str], Awaitable[Session]]
"""Check a newer session token for this socket and adopt it (raises `Answer` when refused)."""


@dataclass(frozen=True)
class MediaLimits:
    """The per-user gate of media reports (media_gate.py): a burst, then one per `refill_s`."""

    burst: int = 20
    refill_s: float = 10.0


@dataclass(frozen=True)
class Handler:
    roles: frozenset[str]
    run: HandlerFn


def _session(conn: Connection) -> Session:
    if conn.session is None:
        raise RuntimeError("Expected an authenticated connection, but got none")
    return conn.session


_ALL = frozenset({"candidate", "proctor", "admin"})


class Handlers:
    def __init__(
        self,
        *,
        users: PresenceStore,
        fanout: Fanout,
        presence: PresenceService,
        tokens: TokenKeeper,
        stats: StatsPublisher,
        renew: Renew,
        clock: Callable[[], float],
        timers: TimerLoop,
        spawn: Callable[..., None],
        media_limits: MediaLimits | None = None,
    ) -> None:
        self._users = users
        self._fanout = fanout
        self._presence = presence
        self._tokens = tokens
        self._stats = stats
        self._renew = renew
        self._clock = clock
        self.media_observers: list[MediaObserver] = []
        self.observed_observers: list[ObservedObserver] = []
        self.local_observers: list[LocalObserver] = []
        limits = media_limits or MediaLimits()

        def gate(apply: Callable[[Any, Any], Awaitable[None]]) -> MediaGate[Any]:
            core: GateCore[Any] = GateCore(burst=limits.burst, refill_s=limits.refill_s)
            return MediaGate(core, apply, timers=timers, clock=clock, spawn=spawn)

        self._status_gate = gate(self._media_changed)
        self._observed_gate = gate(self._observed_changed)
        self._local_gate = gate(self._local_changed)
        self.flag_observers: list[FlagObserver] = []
        self.table: dict[str, Handler] = {
            "auth": Handler(_ALL, self.on_auth),
            "auth.refresh": Handler(_ALL, self.on_auth_refresh),
            "ping": Handler(_ALL, self.on_ping),
            "ack": Handler(_ALL, self.on_ack),
            "media.status": Handler(frozenset({"candidate", "proctor"}), self.on_media_status),
            "media.observed": Handler(frozenset({"proctor"}), self.on_media_observed),
            "finish": Handler(frozenset({"candidate"}), self.on_finish),
            "flag": Handler(frozenset({"proctor"}), self.on_flag),
            "warn": Handler(frozenset({"proctor"}), self.on_warn),
            "subscribe": Handler(frozenset({"admin"}), self.on_subscribe),
        }

    async def on_auth(self, conn: Connection, message: ClientMessage) -> None:
        raise Answer("already_authenticated", "this connection is authenticated; use auth.refresh")

    async def on_auth_refresh(self, conn: Connection, message: ClientMessage) -> None:
        fresh = await self._renew(conn, message.data["token"])
        conn.send(Outbound("auth.ok", {"exp": int(fresh.exp)}, re=message.id))

    async def on_ping(self, conn: Connection, message: ClientMessage) -> None:
        conn.send(Outbound("pong", {}, re=message.id))

    async def on_ack(self, conn: Connection, message: ClientMessage) -> None:
        pushed = conn.awaiting_ack.pop(message.data["id"], None)
        if pushed is not None:
            self._tokens.acked(conn, pushed)

    async def on_media_status(self, conn: Connection, message: ClientMessage) -> None:
        session = _session(conn)
        if session.role != "candidate":
            return  # a proctor's own media state is not tracked yet; accepted, nothing to do
        data = message.data
        state = (data.get("room_id"), data.get("peer_id"), data["joined"], data["video"])
        source = f"{conn.conn_id}:{message.id}"
        key = (session.event_id, session.user_id)
        await self._status_gate.offer(key, state, (data, source))
        local = data.get("local")
        if local is not None:  # the page's own copy (E15): only where it begins matters to the hub
            await self._local_gate.offer(key, local.get("from"), local)

    async def _local_changed(self, key: tuple[str, str], local: dict[str, Any]) -> None:
        for observer in self.local_observers:
            await observer(key[0], key[1], local)

    async def _media_changed(self, key: tuple[str, str], payload: tuple[dict[str, Any], str]) -> None:
        (event_id, user_id), (data, source) = key, payload
        video: Tristate = "on" if data["joined"] and data["video"] else "off"
        async with self._presence.one_announcement():  # the video and the monitor's verdict together
            await self._presence.video(event_id, user_id, video)
            for observer in self.media_observers:
                await observer(event_id, user_id, data, source)

    async def on_media_observed(self, conn: Connection, message: ClientMessage) -> None:
        """A proctor's page says whether it sees a candidate's video: a second witness (issue 12)."""
        session = _session(conn)
        candidate_id = message.data["candidate_id"]
        await self._require_candidate(session.event_id, candidate_id)
        video = message.data["video"]
        key = (session.event_id, candidate_id, session.user_id)
        await self._observed_gate.offer(key, video, video)

    async def _observed_changed(self, key: tuple[str, str, str], video: bool | None) -> None:
        event_id, candidate_id, proctor_id = key
        for observer in self.observed_observers:
            await observer(event_id, candidate_id, proctor_id, video)

    async def on_finish(self, conn: Connection, message: ClientMessage) -> None:
        session = _session(conn)
        await self._presence.finished(session.event_id, session.user_id)

    async def _require_candidate(self, event_id: str, candidate_id: str) -> None:
        record = await self._users.get_user(event_id, candidate_id)
        if record is None or record.role != "candidate":
            raise Answer("unknown_candidate", f"no candidate {candidate_id!r} in event {event_id!r}")

    async def on_flag(self, conn: Connection, message: ClientMessage) -> None:
        session = _session(conn)
        data = message.data
        await self._require_candidate(session.event_id, data["candidate_id"])
        flag = FlagRecord(
            flag_id=secrets.token_hex(8),
            event_id=session.event_id,
            candidate_id=data["candidate_id"],
            by=session.user_id,
            note=data["note"],
            severity=data["severity"],
            ts=self._clock(),
        )
        record = await self._users.add_flag(flag)
        if record is None:
            raise Answer("unknown_candidate", f"no candidate {data['candidate_id']!r}")
        topic = watch_topic(session.event_id)
        shown = {**flag.to_dict(), "ts": int(flag.ts * 1000)}
        shown.pop("extra")
        await self._fanout.publish(topic, Outbound("flag.added", shown))
        await self._fanout.publish(topic, status_message(record))
        for observer in self.flag_observers:
            observer(flag)

    async def on_warn(self, conn: Connection, message: ClientMessage) -> None:
        session = _session(conn)
        candidate_id = message.data["candidate_id"]
        await self._require_candidate(session.event_id, candidate_id)
        record = await self._users.get_user(session.event_id, candidate_id)
        if record is None or record.presence != "online":
            raise Answer("candidate_not_connected", f"candidate {candidate_id!r} is not connected")
        warning = Outbound("warning", {"from": session.name or session.user_id, "text": message.data["text"]})
        await self._fanout.publish(user_topic(session.event_id, candidate_id), warning)

    async def on_subscribe(self, conn: Connection, message: ClientMessage) -> None:
        session = _session(conn)
        event_id = message.data["event_id"]
        if not session.sees_event(event_id):
            raise Forbidden(f"admin of {session.event_id!r} may not subscribe to {event_id!r}")
        await self._fanout.join(conn, watch_topic(event_id))
        await self._fanout.join(conn, admin_topic(event_id))
        self._stats.subscribe(conn, event_id)
        conn.send(await self._stats.message(event_id, re=message.id))
