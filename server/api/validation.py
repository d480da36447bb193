"""Untrusted JSON bodies of the HTTP API, checked in one place and turned into typed values.

Pure: no I/O, no clock. Every refusal is `ApiError(400, "invalid", "<field>: <what is wrong>")`
so a host application can show which field to fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

from server.api.errors import ApiError
from server.api.lti_config import PolicyInvalid, parse_lti
from server.auth import ROLES, Role
from server.config import http_urls
from server.store.records import EventConfig

_EVENT_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_MAX_DATETIME = 64

Check = Callable[[str, object], Any]


def invalid(field: str, problem: str) -> ApiError:
    return ApiError(400, "invalid", f"{field}: {problem}")


def json_object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid("body", "must be a JSON object")
    return body


def no_unknown_fields(body: dict[str, Any], allowed: set[str] | dict[str, Any]) -> None:
    unknown = sorted(k for k in body if k not in allowed)
    if unknown:
        raise invalid(unknown[0], "unknown field")


def integer(minimum: int, maximum: int) -> Check:
    def check(field: str, value: object) -> int:
        # bool is an int subclass in Python; `true` is not a room size.
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(field, "must be an integer")
        if not minimum <= value <= maximum:
            raise invalid(field, f"must be between {minimum} and {maximum}")
        return value

    return check


def text(minimum: int, maximum: int) -> Check:
    def check(field: str, value: object) -> str:
        if not isinstance(value, str):
            raise invalid(field, "must be a string")
        if not minimum <= len(value) <= maximum or (minimum and not value.strip()):
            raise invalid(field, f"must be {minimum}-{maximum} characters")
        return value

    return check


def _event_id(field: str, value: object) -> str:
    if not isinstance(value, str) or not _EVENT_ID.fullmatch(value):
        raise invalid(field, "must be 1-128 characters of A-Z a-z 0-9 . _ -")
    return value


def _boolean(field: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise invalid(field, "must be true or false")
    return value


def _datetime(field: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > _MAX_DATETIME:
        raise invalid(field, "must be an ISO 8601 datetime string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise invalid(field, "must be an ISO 8601 datetime string") from None
    if parsed.tzinfo is None:
        raise invalid(field, "must include a timezone (e.g. 'Z' or '+02:00')")
    return value


def _events_url(field: str, value: object) -> str | None:
    """null: HUB_EVENTS_URL; "": no host events for this event; else comma-separated http(s) URLs."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 2000:
        raise invalid(field, "must be null or a string of comma-separated http(s) URLs")
    try:
        return ",".join(http_urls(value))
    except ValueError as exc:
        raise invalid(field, str(exc)) from None


def _lti(field: str, value: object) -> dict[str, Any] | None:
    """The event's ACS policy for LTI candidates (server/api/lti_config.py); null: every default."""
    try:
        return parse_lti(value)
    except PolicyInvalid as exc:
        name = field if exc.member == "lti" else f"{field}.{exc.member}"
        raise invalid(name, exc.problem) from None


EVENT_FIELDS: dict[str, Check] = {
    "event_id": _event_id,
    "name": text(1, 200),
    "room_size": integer(1, 100),
    "proctors_per_room": integer(1, 10),
    "proctor_load": integer(1, 1000),
    "expected_candidates": integer(0, 100_000),
    # short lifetimes are for rehearsals and tests of the refresh; 100ms accepts any exp
    "token_ttl_s": integer(10, 86_400),
    "recording": _boolean,
    "starts_at": _datetime,
    "ends_at": _datetime,
    "events_url": _events_url,
    "lti": _lti,
}
if set(EVENT_FIELDS) != {f.name for f in fields(EventConfig)}:  # a new EventConfig field needs a rule here
    raise RuntimeError("EVENT_FIELDS and EventConfig disagree")


def _checked(body: dict[str, Any]) -> dict[str, Any]:
    no_unknown_fields(body, EVENT_FIELDS)
    return {name: EVENT_FIELDS[name](name, value) for name, value in body.items()}


def _ordered(config: EventConfig) -> EventConfig:
    if config.starts_at and config.ends_at:
        starts, ends = datetime.fromisoformat(config.starts_at), datetime.fromisoformat(config.ends_at)
        if ends <= starts:
            raise invalid("ends_at", "must be after starts_at")
    return config


def parse_event_create(body: object) -> EventConfig:
    """A new event from a POST body; omitted optional fields take EventConfig's defaults."""
    values = _checked(json_object(body))
    for required in ("event_id", "name"):
        if required not in values:
            raise invalid(required, "is required")
    return _ordered(EventConfig(**values))


def parse_event_patch(current: EventConfig, body: object) -> EventConfig:
    """`current` with the PATCH body's fields applied; the id may be repeated but not changed."""
    values = _checked(json_object(body))
    if values.pop("event_id", current.event_id) != current.event_id:
        raise invalid("event_id", "cannot be changed")
    return _ordered(replace(current, **values))


@dataclass(frozen=True, slots=True)
class SessionRequest:
    user_id: str
    role: Role
    name: str | None = None
    ttl_s: int = 3600


def _role(field: str, value: object) -> Role:
    for role in ROLES:
        if value == role:
            return role
    raise invalid(field, f"must be one of {', '.join(ROLES)}")


def _optional_name(field: str, value: object) -> str | None:
    return None if value is None else text(0, 200)(field, value)


SESSION_FIELDS: dict[str, Check] = {
    "user_id": text(1, 128),
    "role": _role,
    "name": _optional_name,
    "ttl_s": integer(60, 86_400),
}


def parse_session_request(body: object) -> SessionRequest:
    """`POST /api/v1/events/{event_id}/sessions` body: `{user_id, role, name?, ttl_s?}`."""
    raw = json_object(body)
    no_unknown_fields(raw, SESSION_FIELDS)
    values = {name: SESSION_FIELDS[name](name, value) for name, value in raw.items()}
    for required in ("user_id", "role"):
        if required not in values:
            raise invalid(required, "is required")
    return SessionRequest(**values)
