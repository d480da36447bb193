"""The store contract: what every backend keeps and how presence moves.

Presence of one user in one event (several tabs are one user):

    offline ──connect──▶ online ──last socket gone──▶ reconnecting ──grace over──▶ offline
                           ▲                               │
                           └──────────connect──────────────┘
    any ──finish──▶ finished   (sticky: reconnecting later does not undo it)

Stores never read a clock: every call that depends on time takes `now`
(epoch seconds), so the contract suite drives them with a fake clock.
Node liveness is a deadline per node; a node whose deadline passed is reaped
by whichever live node claims it first, and its users go `reconnecting`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Protocol, Self

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


class Store(Protocol):
    """What the hub needs from shared state. Both backends pass tests/test_store_contract.py."""

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None:
        """Raise if the backend is unreachable (readiness)."""

    # events
    async def create_event(self, config: EventConfig) -> bool:
        """Store a new event; False (and nothing written) if the id exists."""

    async def get_event(self, event_id: str) -> EventConfig | None: ...
    async def list_events(self) -> list[EventConfig]: ...
    async def save_event(self, config: EventConfig) -> None: ...

    # presence
    async def connect(self, ref: ConnRef, *, role: str, name: str | None, now: float) -> Transition: ...
    async def disconnect(self, ref: ConnRef, *, now: float, grace_s: float) -> Transition | None:
        """Drop one socket; the last one gone makes an online user `reconnecting` until now+grace_s."""

    async def finish(self, event_id: str, user_id: str, *, now: float) -> Transition | None: ...
    async def expire_graces(self, now: float) -> list[UserRecord]:
        """Users whose grace ran out with no socket back, now `offline`; each returned once, cluster-wide."""

    async def get_user(self, event_id: str, user_id: str) -> UserRecord | None: ...
    async def list_users(self, event_id: str) -> list[UserRecord]: ...
    async def set_video(self, event_id: str, user_id: str, video: Tristate) -> Transition | None: ...
    async def set_status(self, event_id: str, user_id: str, changes: dict[str, Any]) -> Transition | None:
        """Set some of `video`, `recording`, `open_alerts`; `changed` says whether any differed."""

    # nodes
    async def node_alive(self, node_id: str, *, until: float) -> bool:
        """Push this node's deadline; False if it was not registered (new, or reaped while it stalled)."""

    async def node_gone(self, node_id: str) -> None:
        """A node that shuts down cleanly leaves the registry (its sockets were closed one by one)."""

    async def reap_dead_nodes(self, *, now: float, grace_s: float) -> list[UserRecord]:
        """Claim nodes whose deadline passed and drop their sockets; users who went `reconnecting`."""

    # flags
    async def add_flag(self, flag: FlagRecord) -> UserRecord | None:
        """Append a flag; the candidate's record with its new flag count (None if unknown)."""

    async def list_flags(self, event_id: str, candidate_id: str) -> list[FlagRecord]: ...

    # rooms
    async def next_room_seq(self, event_id: str) -> int:
        """1, 2, 3, ... per event: room names built from it are unique, so a retried create is idempotent."""

    async def add_room(self, room: RoomRecord) -> None: ...
    async def list_rooms(self, event_id: str) -> list[RoomRecord]:
        """In the order they were added."""

    async def place_candidate(self, event_id: str, user_id: str, *, room_size: int) -> str | None:
        """The candidate's room: its own if it has one (sticky), else the first room with a free seat
        (taken atomically), else None: the caller adds a room and asks again."""

    async def room_members(self, event_id: str) -> dict[str, list[str]]:
        """room_id -> candidate ids placed in it."""

    # allocation: one writer per event at a time (lock + fencing), one document per event
    async def acquire_lock(self, name: str, owner: str, *, now: float, ttl_s: float) -> int | None:
        """Take the lock `name` for `ttl_s`; a fencing token that grows with every acquisition, or None
        while another owner holds it."""

    async def release_lock(self, name: str, owner: str) -> None: ...
    async def load_allocation(self, event_id: str) -> dict[str, Any]:
        """The event's allocation document (rooms' proctors, open flags, times; reports), {} if none."""

    async def save_allocation(
        self,
        event_id: str,
        *,
        fence: int,
        document: dict[str, Any],
        seat: list[tuple[str, str]],
        unseat: list[tuple[str, str]],
    ) -> bool:
        """Write the document and move seats (candidate, room) at once, unless a newer lock holder
        wrote since `fence` was issued; False (and nothing written) then."""

    # tokens
    async def get_token(self, event_id: str, user_id: str, room_id: str) -> HeldToken | None: ...
    async def swap_token(self, new: HeldToken, *, replaces: str | None) -> HeldToken:
        """Hold `new` unless another token than `replaces` is held; then return that one.

        Two nodes refreshing one user's token at once both get the same winner back."""

    # counters
    async def incr_counter(self, event_id: str, name: str, by: int = 1) -> int: ...
    async def get_counters(self, event_id: str) -> dict[str, int]: ...

    # dedupe
    async def once(self, key: str, *, now: float, ttl_s: float) -> bool:
        """True the first time `key` is seen within `ttl_s`, False after."""

    async def seen(self, keys: list[str], *, now: float) -> list[bool]:
        """For each key, whether it was marked (by `once` or `mark_seen`) and is still within its ttl.
        Marks nothing: a check before work whose success is marked afterwards."""

    async def mark_seen(self, keys: list[str], *, now: float, ttl_s: float) -> None: ...

    # webhook inbox: a durable queue with one consumer group (every node takes a share)
    async def webhook_append(self, payload: bytes) -> str:
        """Store one webhook durably; its entry id. Raises if the backend is unreachable."""

    async def webhook_claim(
        self, consumer: str, *, count: int, block_s: float, min_idle_s: float
    ) -> list[tuple[str, bytes]]:
        """Up to `count` entries for `consumer`: first those delivered (to any consumer) more than
        `min_idle_s` ago and never acked, then new ones; waits up to `block_s` when there are none.
        Idle time is the backend's own clock (Redis measures it; the memory store, monotonic time).
        The first claim of a consumer name on this store object (after a restart) returns at once the
        entries still pending on that name."""

    async def webhook_ack(self, ids: list[str]) -> None:
        """Done with these entries: they leave the queue."""

    async def webhook_backlog(self) -> int:
        """Entries stored and not yet acked (new and pending)."""

    async def webhook_park(self, entry_id: str, payload: bytes, *, error: str) -> None:
        """Move an entry that kept failing to the dead-letter list (and out of the queue)."""

    async def webhook_parked(self) -> list[tuple[str, bytes, str]]:
        """The dead-letter list: (entry id, payload, error), oldest first."""

    async def remember_room_name(self, room_id: str, name: str) -> None:
        """100ms room id -> name, learnt from webhooks that carry both (recording events do not)."""

    async def room_name_of(self, room_id: str) -> str | None: ...

    # cross-node messages
    async def publish(self, topic: str, payload: bytes) -> None: ...
    async def subscribe(self, topic: str, handler: MessageHandler) -> None: ...
    async def unsubscribe(self, topic: str) -> None: ...

    # timelines (the recording monitor)
    async def add_signals(self, event_id: str, candidate_id: str, signals: list[bytes]) -> int:
        """Keep each signal (its canonical JSON) once; how many were new."""

    async def get_signals(self, event_id: str, candidate_id: str) -> list[bytes]: ...
    async def put_alerts(self, event_id: str, candidate_id: str, alerts: dict[str, bytes]) -> None: ...
    async def get_alerts(self, event_id: str, candidate_id: str) -> dict[str, bytes]: ...
    async def alerted_candidates(self, event_id: str) -> list[str]: ...
    async def room_event(self, room_id: str) -> str | None:
        """The event a room was added for (`add_room`), None for rooms of no event here."""

    async def add_session_member(self, session_id: str, event_id: str, candidate_id: str) -> None: ...
    async def session_members(self, session_id: str) -> list[tuple[str, str]]:
        """(event, candidate) of every candidate seen in a 100ms session."""

    async def schedule_check(self, member: str, at: float) -> None:
        """Ask for `member` to be checked at `at` (an earlier request wins)."""

    async def due_checks(self, now: float, *, limit: int = 256) -> list[str]:
        """Checks whose time came, each handed out once cluster-wide."""
