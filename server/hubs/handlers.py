"""What the hub does with each client message after the handshake: typed dispatch.

`HANDLERS` maps a message type to the roles allowed to send it and the
coroutine that handles it. A role not listed gets 4403; a type not listed gets
`error {code: "unknown_type"}`. Handlers raise `Answer` for a refusal the
client can recover from.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from server.auth import InvalidSession, Session, verify_session
from server.errors import Answer, Forbidden
from server.hubs.connection import Connection
from server.hubs.presence import status_message
from server.protocol import ClientMessage, Outbound
from server.store.base import FlagRecord
from server.topics import admin_topic, user_topic, watch_topic

if TYPE_CHECKING:
    from server.hubs.hub import Hub

HandlerFn = Callable[["Hub", Connection, ClientMessage], Awaitable[None]]


@dataclass(frozen=True)
class Handler:
    roles: frozenset[str]
    run: HandlerFn


def _session(conn: Connection) -> Session:
    if conn.session is None:
        raise RuntimeError("Expected an authenticated connection, but got none")
    return conn.session


async def on_auth(hub: Hub, conn: Connection, message: ClientMessage) -> None:
    raise Answer("already_authenticated", "this connection is authenticated; use auth.refresh")


async def on_auth_refresh(hub: Hub, conn: Connection, message: ClientMessage) -> None:
    current = _session(conn)
    try:
        fresh = verify_session(message.data["token"], hub.settings.hub_secret, now=hub.clock())
    except InvalidSession as exc:
        raise Answer("invalid_token", str(exc)) from None
    same = (fresh.user_id, fresh.event_id, fresh.role) == (current.user_id, current.event_id, current.role)
    if not same:
        raise Answer("session_mismatch", "auth.refresh must carry a token for the same sub, event and role")
    hub.renew_session(conn, fresh)
    conn.send(Outbound("auth.ok", {"exp": int(fresh.exp)}, re=message.id))


async def on_ping(hub: Hub, conn: Connection, message: ClientMessage) -> None:
    conn.send(Outbound("pong", {}, re=message.id))


async def on_ack(hub: Hub, conn: Connection, message: ClientMessage) -> None:
    pushed = conn.awaiting_ack.pop(message.data["id"], None)
    if pushed is not None:
        hub.tokens.acked(conn, pushed)


async def on_media_status(hub: Hub, conn: Connection, message: ClientMessage) -> None:
    session = _session(conn)
    if session.role != "candidate":
        return  # a proctor's own media state is not tracked yet; accepted, nothing to do
    data = message.data
    video = "on" if data["joined"] and data["video"] else "off"
    await hub.presence.video(session.event_id, session.user_id, video)
    for observer in hub.media_observers:
        await observer(session.event_id, session.user_id, data, f"{conn.conn_id}:{message.id}")


async def on_finish(hub: Hub, conn: Connection, message: ClientMessage) -> None:
    session = _session(conn)
    await hub.presence.finished(session.event_id, session.user_id)


async def _require_candidate(hub: Hub, event_id: str, candidate_id: str) -> None:
    record = await hub.store.get_user(event_id, candidate_id)
    if record is None or record.role != "candidate":
        raise Answer("unknown_candidate", f"no candidate {candidate_id!r} in event {event_id!r}")


async def on_flag(hub: Hub, conn: Connection, message: ClientMessage) -> None:
    session = _session(conn)
    data = message.data
    await _require_candidate(hub, session.event_id, data["candidate_id"])
    flag = FlagRecord(
        flag_id=secrets.token_hex(8),
        event_id=session.event_id,
        candidate_id=data["candidate_id"],
        by=session.user_id,
        note=data["note"],
        severity=data["severity"],
        ts=hub.clock(),
    )
    record = await hub.store.add_flag(flag)
    if record is None:
        raise Answer("unknown_candidate", f"no candidate {data['candidate_id']!r}")
    topic = watch_topic(session.event_id)
    shown = {**flag.to_dict(), "ts": int(flag.ts * 1000)}
    shown.pop("extra")
    await hub.fanout.publish(topic, Outbound("flag.added", shown))
    await hub.fanout.publish(topic, status_message(record))
    for observer in hub.flag_observers:
        observer(session.event_id, flag.candidate_id)


async def on_warn(hub: Hub, conn: Connection, message: ClientMessage) -> None:
    session = _session(conn)
    candidate_id = message.data["candidate_id"]
    await _require_candidate(hub, session.event_id, candidate_id)
    record = await hub.store.get_user(session.event_id, candidate_id)
    if record is None or record.presence != "online":
        raise Answer("candidate_not_connected", f"candidate {candidate_id!r} is not connected")
    warning = Outbound("warning", {"from": session.name or session.user_id, "text": message.data["text"]})
    await hub.fanout.publish(user_topic(session.event_id, candidate_id), warning)


async def on_subscribe(hub: Hub, conn: Connection, message: ClientMessage) -> None:
    session = _session(conn)
    event_id = message.data["event_id"]
    if not session.sees_event(event_id):
        raise Forbidden(f"admin of {session.event_id!r} may not subscribe to {event_id!r}")
    await hub.fanout.join(conn, watch_topic(event_id))
    await hub.fanout.join(conn, admin_topic(event_id))
    hub.stats.subscribe(conn, event_id)
    conn.send(await hub.stats.message(event_id, re=message.id))


_ALL = frozenset({"candidate", "proctor", "admin"})
HANDLERS: dict[str, Handler] = {
    "auth": Handler(_ALL, on_auth),
    "auth.refresh": Handler(_ALL, on_auth_refresh),
    "ping": Handler(_ALL, on_ping),
    "ack": Handler(_ALL, on_ack),
    "media.status": Handler(frozenset({"candidate", "proctor"}), on_media_status),
    "finish": Handler(frozenset({"candidate"}), on_finish),
    "flag": Handler(frozenset({"proctor"}), on_flag),
    "warn": Handler(frozenset({"proctor"}), on_warn),
    "subscribe": Handler(frozenset({"admin"}), on_subscribe),
}
