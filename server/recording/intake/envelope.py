"""The 100ms webhook envelope (contract §3.2), parsed tolerantly and refused with a reason.

    {"version": "2.0", "id": "<uuid>", "app_id"?: ..., "account_id"?: ..., "template_id"?: ...,
     "timestamp": "2021-08-08T07:04:15Z", "type": "peer.join.success", "data": {...}}

`version` may be "1.0" or "2.0" (or absent), the ids around `id` may be absent, and `size`/`duration` in
`data` come as integers or as numeric strings (the docs' tables and samples disagree): they are made numbers.
Times are RFC 3339; the envelope's has second precision, those in `data` nanoseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

MAX_BODY_BYTES = 64 * 1024
MAX_ID_CHARS = 256
NUMERIC_FIELDS = ("size", "duration")

KNOWN_TYPES = frozenset(
    {
        "session.open.success",
        "session.close.success",
        "peer.join.success",
        "peer.leave.success",
        "peer.join.failure",
        "peer.leave.failure",
        "room.end.success",
        "room.end.failure",
        "role.change.success",
        "role.change.failure",
        "track.recording.started.success",
        "track.recording.success",
        "track.recording.failure",
        "stream.recording.success",
        "stream.recording.failure",
        "recording.success",
        "recording.failed",
        "beam.started.success",
        "beam.stopped.success",
        "beam.recording.success",
        "beam.failure",
        "hls.started.success",
        "hls.stopped.success",
        "hls.recording.success",
        "hls.failure",
        "transcription.started.success",
        "transcription.success",
        "transcription.failure",
        "ingest.start.success",
        "ingest.end.success",
        "ingest.start.failure",
        "ingest.failure",
    }
)
"""The webhook catalogue (contract §3.3). Other types are answered 200 and ignored, as 100ms asks."""

URGENT_TYPES = frozenset(
    {
        "stream.recording.failure",
        "track.recording.failure",
        "recording.failed",
        "beam.failure",
        "hls.failure",
    }
)
"""Failures a proctor must hear of at once. The inbox handles them in a lane of their own, so at the
end of an exam (thousands of leaves and finished recordings a minute) they never wait behind the bulk."""


def is_urgent(event_type: str) -> bool:
    return event_type in URGENT_TYPES


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)


class BadWebhook(ValueError):
    """The body is not a 100ms event; `reason` says why (it goes back to the sender with a 400)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Envelope:
    id: str
    type: str
    timestamp: float
    """Epoch seconds, from the envelope's second-precision `timestamp`."""
    data: dict[str, Any]
    raw: bytes = field(repr=False)
    """The body exactly as received (what the inbox stores and the relay forwards)."""

    @property
    def room_id(self) -> str | None:
        value = self.data.get("room_id")
        return value if isinstance(value, str) and value else None

    @property
    def room_name(self) -> str | None:
        value = self.data.get("room_name")
        return value if isinstance(value, str) and value else None


def parse_time(value: object) -> float | None:
    """Epoch seconds of an RFC 3339 time (any fraction up to nanoseconds, `Z` or an offset).

    None when absent, not a string, not RFC 3339, or Go's zero time "0001-01-01T00:00:00Z" (unset)."""
    if not isinstance(value, str):
        return None
    match = _RFC3339.fullmatch(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    if int(year) <= 1:
        return None
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC)
    except ValueError:
        return None
    if not zulu:
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        moment -= offset if sign == "+" else -offset
    seconds = moment.timestamp()
    if fraction:
        seconds += int(fraction) / 10 ** len(fraction)
    return seconds


def _number(name: str, value: object) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BadWebhook(f"data.{name} must be a number")
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise BadWebhook(f"data.{name} must be a number, got {value[:40]!r}") from None
        return int(number) if number.is_integer() else number
    return value


def _text(raw: dict[str, Any], name: str) -> str:
    value = raw.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadWebhook(f"{name} must be a non-empty string")
    if len(value) > MAX_ID_CHARS:
        raise BadWebhook(f"{name} must be at most {MAX_ID_CHARS} characters")
    return value


def parse_envelope(body: bytes) -> Envelope:
    """The event in `body`, or `BadWebhook` saying why it is not one."""
    if len(body) > MAX_BODY_BYTES:
        raise BadWebhook(f"body is larger than {MAX_BODY_BYTES} bytes")
    if not body.strip():
        raise BadWebhook("body is empty")
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadWebhook("body is not JSON") from None
    if not isinstance(raw, dict):
        raise BadWebhook("body must be a JSON object")
    event_id = _text(raw, "id")
    event_type = _text(raw, "type")
    if "timestamp" not in raw:
        raise BadWebhook("timestamp is missing")
    timestamp = parse_time(raw["timestamp"])
    if timestamp is None:
        raise BadWebhook("timestamp must be an RFC 3339 time")
    data = raw.get("data")
    if not isinstance(data, dict):
        raise BadWebhook("data must be an object")
    for name in NUMERIC_FIELDS:
        if name in data and data[name] is not None:
            data[name] = _number(name, data[name])
    return Envelope(event_id, event_type, timestamp, data, bytes(body))
