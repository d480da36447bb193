"""What the store keeps, as frozen records that round-trip through plain dicts (JSON in Redis)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Self

Presence = Literal["online", "reconnecting", "offline", "finished"]
Tristate = Literal["on", "off", "unknown"]
MessageHandler = Callable[[str, bytes], None]
"""Called with (topic, payload) for every message published on a subscribed topic."""


class Record:
    """Stored records round-trip through plain dicts (JSON in Redis, copies in memory)."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Self:
        return cls(**raw)


@dataclass(frozen=True, slots=True)
class EventConfig(Record):
    event_id: str
    name: str
    room_size: int = 10
    proctors_per_room: int = 1
    proctor_load: int = 10
    expected_candidates: int = 0
    token_ttl_s: int = 3600
    recording: bool = True
    starts_at: str | None = None
    ends_at: str | None = None
    events_url: str | None = None
    """Where this event's host events go (comma-separated URLs; "" for nowhere); None: HUB_EVENTS_URL."""
    lti: dict[str, Any] | None = None
    """The ACS policy for the event's LTI candidates (server/api/lti_config.py); None: the defaults."""


@dataclass(frozen=True, slots=True)
class ConnRef:
    """One socket of one user, held by one node. `conn_id` is unique across nodes."""

    event_id: str
    user_id: str
    conn_id: str
    node_id: str


@dataclass(frozen=True, slots=True)
class UserRecord(Record):
    event_id: str
    user_id: str
    role: str
    name: str | None = None
    presence: Presence = "offline"
    since: float = 0.0
    connections: int = 0
    video: Tristate = "unknown"
    flags: int = 0
    room_id: str | None = None
    recording: Tristate = "unknown"
    open_alerts: int = 0

    def with_changes(self, **changes: Any) -> UserRecord:
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Transition:
    """A user's record after a store call, and whether its presence (or media) changed."""

    record: UserRecord
    changed: bool


@dataclass(frozen=True, slots=True)
class FlagRecord(Record):
    flag_id: str
    event_id: str
    candidate_id: str
    by: str
    note: str
    severity: str
    ts: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RoomRecord(Record):
    """A 100ms room that belongs to an event."""

    event_id: str
    room_id: str
    name: str
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class HeldToken(Record):
    """The 100ms app token a user holds for one room: one per user and room, whatever its tabs."""

    event_id: str
    user_id: str
    room_id: str
    token: str
    jti: str
    exp: float
