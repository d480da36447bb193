"""Events and session minting over HTTP (docs/protocol.md, "HTTP API").

Each endpoint: who is calling, is it allowed, parse the body (validation.py), then one
store call. The order matters: permission is checked before existence, so a caller
cannot probe for events it may not see.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server.api.errors import ApiError
from server.api.security import caller
from server.api.validation import parse_event_create, parse_event_patch, parse_session_request
from server.auth import mint_session
from server.config import Settings
from server.store.base import Store
from server.store.records import EventConfig, UserRecord

MAX_BODY_BYTES = 64 * 1024
PRESENCES = ("online", "reconnecting", "offline", "finished")


def counts(users: list[UserRecord]) -> dict[str, int]:
    """Live counts: candidates by presence, and proctors online."""
    candidates = Counter(u.presence for u in users if u.role == "candidate")
    result = {presence: candidates.get(presence, 0) for presence in PRESENCES}
    result["proctors"] = sum(1 for u in users if u.role == "proctor" and u.presence == "online")
    return result


async def event_json(store: Store, config: EventConfig) -> dict[str, Any]:
    """The one shape of an event on the wire: its config plus live `counts`."""
    return {**config.to_dict(), "counts": counts(await store.presence.list_users(config.event_id))}


async def json_body(request: Request) -> object:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"body is larger than {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; deep nesting recurses
        raise ApiError(400, "invalid_json", "body is not valid JSON") from None


async def _existing(store: Store, event_id: str) -> EventConfig:
    config = await store.events.get_event(event_id)
    if config is None:
        raise ApiError(404, "not_found", f"event {event_id!r} does not exist")
    return config


def _signable(request: Request, config: EventConfig) -> EventConfig:
    """An event may name its own host-event URLs only if this hub can sign what it sends them."""
    settings: Settings = request.app.state.settings
    if config.events_url and not settings.events_secret:
        raise ApiError(400, "invalid", "events_url: HUB_EVENTS_SECRET is not set on this hub")
    return config


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


class Events(HTTPEndpoint):
    """`/api/v1/events`: create (API key or admin of every event) and list (what the caller admins)."""

    async def post(self, request: Request) -> JSONResponse:
        (await caller(request)).require_admin(None)
        config = _signable(request, parse_event_create(await json_body(request)))
        store = _store(request)
        if not await store.events.create_event(config):
            raise ApiError(409, "exists", f"event {config.event_id!r} already exists")
        # The warm pool: rooms are created ahead of the first candidate, not during the join storm.
        request.app.state.hub.rooms.request(config.event_id)
        return JSONResponse(await event_json(store, config), status_code=201)

    async def get(self, request: Request) -> JSONResponse:
        who = await caller(request)
        who.require_any_admin()
        store = _store(request)
        visible = [e for e in await store.events.list_events() if who.admins(e.event_id)]
        return JSONResponse({"events": [await event_json(store, e) for e in visible]})


class Event(HTTPEndpoint):
    """`/api/v1/events/{event_id}`: read and change one event's config."""

    async def get(self, request: Request) -> JSONResponse:
        event_id: str = request.path_params["event_id"]
        (await caller(request)).require_admin(event_id)
        store = _store(request)
        return JSONResponse(await event_json(store, await _existing(store, event_id)))

    async def patch(self, request: Request) -> JSONResponse:
        event_id: str = request.path_params["event_id"]
        who = await caller(request)
        who.require_admin(event_id)
        store = _store(request)
        current = await _existing(store, event_id)
        updated = _signable(request, parse_event_patch(current, await json_body(request)))
        if updated.events_url != current.events_url and not who.admins(None):
            # where the hub sends POSTs is the operator's choice, not one event's admin's
            raise ApiError(403, "forbidden", "only the API key or an admin of every event may set events_url")
        await store.events.save_event(updated)
        return JSONResponse(await event_json(store, updated))


class Sessions(HTTPEndpoint):
    """`/api/v1/events/{event_id}/sessions`: mint a session JWT for a host that does not sign its own."""

    async def post(self, request: Request) -> JSONResponse:
        event_id: str = request.path_params["event_id"]
        (await caller(request)).require_admin(event_id)
        store = _store(request)
        await _existing(store, event_id)
        wanted = parse_session_request(await json_body(request))
        settings: Settings = request.app.state.settings
        if wanted.ttl_s > settings.jwt_max_ttl_s:
            raise ApiError(400, "invalid", f"ttl_s: at most {settings.jwt_max_ttl_s:g} (HUB_JWT_MAX_TTL_S)")
        now = time.time()
        token = mint_session(
            settings.hub_secret,
            user_id=wanted.user_id,
            event_id=event_id,
            role=wanted.role,
            now=now,
            ttl_s=wanted.ttl_s,
            name=wanted.name,
            rules=settings.token_rules,
        )
        return JSONResponse({"token": token, "expires_at": int(now + wanted.ttl_s)}, status_code=201)


routes: list[Route] = [
    Route("/api/v1/events", Events),
    Route("/api/v1/events/{event_id}", Event),
    Route("/api/v1/events/{event_id}/sessions", Sessions),
]
