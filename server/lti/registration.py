"""Registered platforms over HTTP: `POST|GET /api/v1/lti/platforms`, `GET|DELETE /api/v1/lti/platforms/{id}`.

Only the API key or an admin of every event (`*`) may register: a registration creates events.
"""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.api.errors import ApiError
from server.api.events import json_body
from server.api.security import caller
from server.api.validation import EVENT_FIELDS, invalid, json_object, no_unknown_fields, text
from server.config import Settings
from server.store.base import Store
from server.store.lti import LtiPlatform

MAX_URL = 2048
MAX_DEPLOYMENTS = 100
PLATFORM_FIELDS = (
    "issuer",
    "client_id",
    "deployment_ids",
    "auth_login_url",
    "auth_token_url",
    "jwks_url",
    "event_defaults",
)


def _url(field: str, value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_URL:
        raise invalid(field, f"must be an http(s) URL of at most {MAX_URL} characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid(field, "must be an http(s) URL")
    return value


def _deployments(field: str, value: object) -> list[str]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_DEPLOYMENTS:
        raise invalid(field, f"must be a list of 1-{MAX_DEPLOYMENTS} deployment ids")
    ids = [text(1, 255)(f"{field}[{i}]", v) for i, v in enumerate(value)]
    if len(set(ids)) != len(ids):
        raise invalid(field, "must not repeat an id")
    return ids


def _event_defaults(field: str, value: object) -> dict[str, Any]:
    """Event settings every event created from this platform's resource links starts with."""
    raw = json_object(value) if value is not None else {}
    allowed = {name: check for name, check in EVENT_FIELDS.items() if name != "event_id"}
    try:
        no_unknown_fields(raw, allowed)
    except ApiError as exc:
        raise invalid(f"{field}.{exc.message.split(':')[0]}", "unknown field") from None
    return {name: allowed[name](f"{field}.{name}", v) for name, v in raw.items()}


CHECKS = {
    "issuer": text(1, MAX_URL),
    "client_id": text(1, 255),
    "deployment_ids": _deployments,
    "auth_login_url": _url,
    "auth_token_url": _url,
    "jwks_url": _url,
    "event_defaults": _event_defaults,
}


def parse_platform(body: object, *, platform_id: str, now: float) -> LtiPlatform:
    """A registration from a POST body (pure); every field but `event_defaults` is required."""
    raw = json_object(body)
    no_unknown_fields(raw, CHECKS)
    values = {name: CHECKS[name](name, value) for name, value in raw.items()}
    for required in PLATFORM_FIELDS[:-1]:
        if required not in values:
            raise invalid(required, "is required")
    return LtiPlatform(platform_id=platform_id, created_at=now, **values)


def tool_base(request: Request) -> str:
    """Where platforms reach this tool: LTI_BASE_URL, else the URL the request came to."""
    settings: Settings = request.app.state.settings
    return settings.lti_base_url or str(request.base_url).rstrip("/")


def tool_urls(base: str) -> dict[str, str]:
    return {
        "login_url": f"{base}/lti/login",
        "launch_url": f"{base}/lti/launch",
        "jwks_url": f"{base}/lti/jwks",
    }


def platform_json(platform: LtiPlatform, base: str) -> dict[str, Any]:
    return {**platform.to_dict(), "tool": tool_urls(base)}


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def _existing(request: Request) -> LtiPlatform:
    platform_id: str = request.path_params["platform_id"]
    platform = await _store(request).lti.get_platform(platform_id)
    if platform is None:
        raise ApiError(404, "not_found", f"LTI platform {platform_id!r} is not registered")
    return platform


class Platforms(HTTPEndpoint):
    async def post(self, request: Request) -> JSONResponse:
        (await caller(request)).require_admin(None)
        platform = parse_platform(await json_body(request), platform_id=secrets.token_hex(6), now=time.time())
        if not await _store(request).lti.add_platform(platform):
            message = (
                f"issuer {platform.issuer!r} with client_id {platform.client_id!r} is registered already"
            )
            raise ApiError(409, "exists", message)
        return JSONResponse(platform_json(platform, tool_base(request)), status_code=201)

    async def get(self, request: Request) -> JSONResponse:
        (await caller(request)).require_admin(None)
        base = tool_base(request)
        platforms = await _store(request).lti.list_platforms()
        return JSONResponse({"platforms": [platform_json(p, base) for p in platforms]})


class Platform(HTTPEndpoint):
    async def get(self, request: Request) -> JSONResponse:
        (await caller(request)).require_admin(None)
        return JSONResponse(platform_json(await _existing(request), tool_base(request)))

    async def delete(self, request: Request) -> Response:
        (await caller(request)).require_admin(None)
        platform = await _existing(request)
        await _store(request).lti.delete_platform(platform.platform_id)
        return Response(status_code=204)


routes: list[Route] = [
    Route("/api/v1/lti/platforms", Platforms),
    Route("/api/v1/lti/platforms/{platform_id}", Platform),
]
