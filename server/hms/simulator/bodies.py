"""Untrusted request input, parsed in one place: JSON bodies and query parameters."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request

from server.hms.simulator import times
from server.hms.simulator.errors import bad_request


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; an empty body is `{}`; anything else is 400."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise bad_request("Invalid request body", "the body must be JSON") from None
    if not isinstance(body, dict):
        raise bad_request("Invalid request body", "the body must be a JSON object")
    return body


def flag(query: Mapping[str, str], name: str, default: bool | None) -> bool | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise bad_request(f"Invalid query param: {name}", f"{name} must be true or false, got {raw!r}")


def moment(query: Mapping[str, str], name: str) -> float | None:
    raw = query.get(name)
    if not raw:
        return None
    try:
        return times.parse(raw)
    except ValueError:
        raise bad_request(
            f"Invalid query param: {name}", f"{name} must be an RFC 3339 time, got {raw!r}"
        ) from None


def optional_string(body: Mapping[str, Any], name: str, default: str | None = None) -> str | None:
    value = body.get(name, default)
    if value is not None and not isinstance(value, str):
        raise bad_request(f"Invalid body param: {name}", f"{name} must be a string")
    return value


def optional_bool(body: Mapping[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise bad_request(f"Invalid body param: {name}", f"{name} must be a boolean")
    return value
