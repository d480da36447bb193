"""The connection loop: accept, authenticate the first frame, then read and dispatch.

Every refusal is an exception from `server.errors`, turned into its documented
answer here and nowhere else: a `Close` closes with its code, an `Answer`
becomes an `error` message, anything unexpected is logged and answered
`error {code: "internal"}` without a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from server.auth import InvalidSession, Session
from server.errors import (
    Answer,
    AuthTimeout,
    BadFrame,
    Close,
    Draining,
    Forbidden,
    NotAuthenticated,
    OriginRefused,
    RateLimited,
    TooBig,
    TryLater,
)
from server.hubs.connection import Connection
from server.hubs.ratelimit import TokenBucket
from server.protocol import ClientMessage, choose_codec, decode_untrusted, error
from server.ws_protocol import NOW_WRITER

if TYPE_CHECKING:
    from server.hubs.hub import Hub

log = logging.getLogger("proctorhub.hubs.endpoint")

Scope = dict[str, Any]


class Disconnected(Exception):
    """The client went away."""


def _frame(message: dict[str, Any]) -> str | bytes:
    if message["type"] == "websocket.disconnect":
        raise Disconnected
    text = message.get("text")
    return text if text is not None else message.get("bytes") or b""


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


def origin_allowed(origin: str | None, host: str | None, allowed: tuple[str, ...]) -> bool:
    """No list: any origin. With a list: the listed origins, clients that send none (not browsers), and
    the hub's own pages (the Origin's host is the Host the socket came to, whatever the scheme a proxy
    terminated)."""
    if not allowed or origin is None or origin in allowed:
        return True
    return host is not None and origin.partition("://")[2] == host


class HubEndpoint:
    """ASGI app for `GET /ws`."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        hub = self.hub
        codec, subprotocol = choose_codec(list(scope.get("subprotocols", ())))
        await send({"type": "websocket.accept", "subprotocol": subprotocol})
        conn = hub.new_connection(send, codec, scope.get("extensions", {}).get(NOW_WRITER))
        try:
            self._admit(scope)
            session = await self._authenticate(conn, receive)
            async with hub.join_gate.admit():
                await hub.attach(conn, session)
            await self._read(conn, receive)
        except Close as exc:
            await hub.close(conn, exc)
        except Disconnected:
            log.debug("conn %s: the client went away", conn.conn_id)
        except Exception:
            # The store or 100ms failed under us: the client retries later (1013), we log the cause.
            log.exception("conn %s: failed; closing 1013", conn.conn_id)
            await hub.close(conn, TryLater("the hub could not serve this connection; try again"))
        finally:
            await hub.detach(conn)

    def _admit(self, scope: Scope) -> None:
        if self.hub.draining:
            raise Draining("node is draining; reconnect to another")
        origin = _header(scope, b"origin")
        if not origin_allowed(origin, _header(scope, b"host"), self.hub.settings.allowed_origins):
            raise OriginRefused(f"origin {origin} is not allowed")

    async def _authenticate(self, conn: Connection, receive: Any) -> Session:
        hub = self.hub
        try:
            async with asyncio.timeout(hub.settings.auth_timeout_s):
                frame = _frame(await receive())
        except TimeoutError:
            hub.metrics.auth_failed("timeout")
            raise AuthTimeout("no auth message in time") from None
        self._check_size(frame)
        try:
            message = decode_untrusted(frame, conn.codec)
        except BadFrame:
            hub.metrics.auth_failed("malformed")
            raise
        if message.type != "auth":
            hub.metrics.auth_failed("not_auth")
            raise NotAuthenticated("the first message must be auth")
        try:
            return await hub.verify(message.data["token"])
        except InvalidSession as exc:
            hub.metrics.auth_failed("invalid_token")
            raise NotAuthenticated(f"invalid session token: {exc}") from None

    def _check_size(self, frame: str | bytes) -> None:
        limit = self.hub.settings.max_message_bytes
        # A str's length in characters is at most its UTF-8 size; only then count bytes exactly.
        if (
            len(frame) > limit // 4
            and (len(frame.encode()) if isinstance(frame, str) else len(frame)) > limit
        ):
            raise TooBig(f"message over {limit} bytes")

    async def _read(self, conn: Connection, receive: Any) -> None:
        hub = self.hub
        settings = hub.settings
        bucket = TokenBucket(settings.rate_per_s, settings.rate_burst, time.monotonic())
        while True:
            frame = _frame(await receive())
            if not bucket.allow(time.monotonic()):
                raise RateLimited(f"over {settings.rate_per_s:g} messages/s")
            self._check_size(frame)
            message = decode_untrusted(frame, conn.codec)
            hub.metrics.received(message.type)
            await self._dispatch(conn, message)
            if conn.queued:
                # Frames already buffered are read without suspending; let the writers run.
                await asyncio.sleep(0)

    async def _dispatch(self, conn: Connection, message: ClientMessage) -> None:
        handler = self.hub.handlers.table.get(message.type)
        if handler is None:
            conn.send(error("unknown_type", f"unknown message type {message.type!r}", re=message.id))
            return
        session = conn.session
        if session is None or session.role not in handler.roles:
            role = session.role if session else "anonymous"
            raise Forbidden(f"a {role} may not send {message.type}")
        try:
            await handler.run(conn, message)
        except Answer as exc:
            conn.send(error(exc.code, exc.message, re=message.id))
        except Close:
            raise
        except Exception:
            self.hub.metrics.handler_errors.inc()
            log.exception("handler for %s failed", message.type)
            conn.send(error("internal", "the hub could not handle this message", re=message.id))
