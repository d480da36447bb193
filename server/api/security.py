"""Who is calling the HTTP API, and what they may do (docs/protocol.md, "HTTP API").

A credential is `Authorization: Bearer <credential>`: either the API key (the host
application, allowed everything) or a host-app session JWT. Permissions:

    API key                  everything
    admin session, event *   everything
    admin session, event A   read and change A, mint sessions for A, list (sees only A)
    proctor session, event A read A's rooms, timelines, recordings (`require_reader`)
    candidate session        nothing
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request

from server.api.errors import ApiError
from server.auth import ALL_EVENTS, InvalidSession, Session
from server.config import Settings
from server.verifier import SessionVerifier

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Caller:
    kind: Literal["api_key", "session"]
    session: Session | None = None

    def admins(self, event_id: str | None) -> bool:
        """True if the caller administers `event_id` (None: every event, as creating one needs)."""
        if self.kind == "api_key":
            return True
        session = self.session
        if session is None or session.role != "admin":
            return False
        return session.event_id == ALL_EVENTS or (event_id is not None and session.event_id == event_id)

    def require_admin(self, event_id: str | None) -> None:
        if not self.admins(event_id):
            raise ApiError(403, "forbidden", self._refusal(event_id, "administer"))

    def require_any_admin(self) -> None:
        """For listing: any admin may list, and sees only what `admins` allows."""
        if self.kind != "api_key" and (self.session is None or self.session.role != "admin"):
            raise ApiError(403, "forbidden", "only the API key or an admin session may do that")

    def require_reader(self, event_id: str) -> None:
        """Admins, and the event's own proctors (rooms, timelines, recordings)."""
        if self.admins(event_id):
            return
        session = self.session
        if session is not None and session.role == "proctor" and session.event_id == event_id:
            return
        raise ApiError(403, "forbidden", self._refusal(event_id, "read"))

    def _refusal(self, event_id: str | None, verb: str) -> str:
        who = f"a {self.session.role} session" if self.session else "this caller"
        target = f"event {event_id!r}" if event_id is not None else "all events"
        return f"{who} may not {verb} {target}"


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise ApiError(401, "unauthenticated", "missing Authorization header", headers=_CHALLENGE)
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise ApiError(
            401, "unauthenticated", "expected 'Authorization: Bearer <credential>'", headers=_CHALLENGE
        )
    return credential


def _is_api_key(credential: str, api_key: str | None) -> bool:
    if not api_key:
        return False
    # bytes: compare_digest on str refuses non-ASCII, which a client controls.
    return hmac.compare_digest(credential.encode(), api_key.encode())


async def authenticate(credential: str, settings: Settings, sessions: SessionVerifier) -> Caller:
    """The caller a credential proves, or ApiError 401 with the reason."""
    if _is_api_key(credential, settings.api_key):
        return Caller("api_key")
    try:
        session = await sessions.verify(credential)
    except InvalidSession as exc:
        raise ApiError(401, "invalid_credentials", f"invalid credential: {exc}", headers=_CHALLENGE) from None
    return Caller("session", session)


async def caller(request: Request) -> Caller:
    state = request.app.state
    return await authenticate(_bearer(request), state.settings, state.sessions)


def require_api_key(request: Request) -> None:
    """Operators' endpoints (/metrics): the API key when one is set, nothing else (not a session)."""
    api_key: str | None = request.app.state.settings.api_key
    if api_key is None:
        return
    if not _is_api_key(_bearer(request), api_key):
        raise ApiError(401, "invalid_credentials", "this endpoint needs the API key", headers=_CHALLENGE)
