"""What the host app is told, as Standard Webhooks payloads: `{type, timestamp, data}`. Pure.

Message ids are derived from what happened (`alert.closed` of alert A in event E), not drawn at
random, so a producer that reports one fact twice (two evaluations, a retried handler) makes the
same message, and the same deliveries, which the outbox stores once. Delivery ids are derived from
the message id and the URL the same way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from server.store.outbox import Delivery
from server.store.records import FlagRecord, UserRecord

ALERT_OPENED = "alert.opened"
ALERT_CLOSED = "alert.closed"
FLAG_ADDED = "flag.added"
CANDIDATE_FINISHED = "candidate.finished"
REPORT_READY = "report.ready"
TYPES = (ALERT_OPENED, ALERT_CLOSED, FLAG_ADDED, CANDIDATE_FINISHED, REPORT_READY)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class HostEvent:
    """One fact for the host app, before it is addressed to URLs."""

    type: str
    event_id: str
    key: str
    """What makes it this fact and no other (an alert id, a flag id, a candidate id)."""
    data: dict[str, Any]

    @property
    def message_id(self) -> str:
        return "msg_" + _digest(self.event_id, self.type, self.key)


def _ms(at: float) -> int:
    return int(at * 1000)


def iso(at: float) -> str:
    """ISO 8601 in UTC with milliseconds, as Standard Webhooks' `timestamp` field."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def body(event: HostEvent, at: float) -> str:
    payload = {"type": event.type, "timestamp": iso(at), "data": {"event_id": event.event_id, **event.data}}
    return orjson.dumps(payload).decode()


def deliveries(event: HostEvent, urls: tuple[str, ...], now: float) -> list[Delivery]:
    """The event for each URL, due at once."""
    text = body(event, now)
    return [
        Delivery(
            delivery_id="dlv_" + _digest(event.message_id, url),
            message_id=event.message_id,
            event_id=event.event_id,
            type=event.type,
            url=url,
            body=text,
            created_at=now,
            next_at=now,
            window_from=now,
        )
        for url in urls
    ]


def alert_events(event_id: str, before: dict[str, Any] | None, after: dict[str, Any]) -> list[HostEvent]:
    """An alert as stored `before` (None: first seen) and `after` a timeline evaluation: opened when
    first seen, closed when it turns closed (both for a gap found only after it ended)."""
    out = []
    key = after["alert_id"]
    if before is None:
        out.append(HostEvent(ALERT_OPENED, event_id, key, {**after, "state": "open", "ended_at": None}))
    was_open = before is None or before.get("state") == "open"
    if after["state"] == "closed" and was_open:
        out.append(HostEvent(ALERT_CLOSED, event_id, key, dict(after)))
    return out


def flag_event(flag: FlagRecord) -> HostEvent:
    data = {
        "flag_id": flag.flag_id,
        "candidate_id": flag.candidate_id,
        "by": flag.by,
        "note": flag.note,
        "severity": flag.severity,
        "ts": _ms(flag.ts),
    }
    return HostEvent(FLAG_ADDED, flag.event_id, flag.flag_id, data)


def finished_event(record: UserRecord) -> HostEvent:
    data = {
        "candidate_id": record.user_id,
        "name": record.name,
        "finished_at": _ms(record.since),
        "flags": record.flags,
        "open_alerts": record.open_alerts,
    }
    return HostEvent(CANDIDATE_FINISHED, record.event_id, record.user_id, data)


def report_event(event_id: str, report: dict[str, Any], path: str) -> HostEvent:
    """The event's report (as `GET {path}` answers it) once every recording is accounted for."""
    return HostEvent(REPORT_READY, event_id, event_id, {"report_path": path, "report": report})
