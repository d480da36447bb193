"""The wire messages of docs/protocol.md and their JSON / msgpack codecs (sans-I/O).

`decode_untrusted` is the one place client bytes are parsed: it returns a
`ClientMessage` whose `data` has been checked against the schema of its type,
or raises `BadFrame`. Unknown types pass through so the hub can answer
`error {code: "unknown_type"}` as the contract says.

Server messages are `Outbound`s; their `data` is encoded once per codec and
spliced into each connection's envelope (the `id` differs per connection), so
a broadcast to thousands of sockets serialises the payload once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, TypedDict

import msgpack
import orjson

from server.errors import BadFrame


class Codec(enum.Enum):
    JSON = "proctorhub.v1.json"
    MSGPACK = "proctorhub.v1.msgpack"


def choose_codec(offered: list[str]) -> tuple[Codec, str | None]:
    """Pick the codec from the client's offered subprotocols (JSON when none is offered)."""
    for name in offered:
        if name == Codec.MSGPACK.value:
            return Codec.MSGPACK, name
        if name == Codec.JSON.value:
            return Codec.JSON, name
    return Codec.JSON, None


# ---------------------------------------------------------------- client messages


class AuthData(TypedDict):
    token: str


class AckData(TypedDict):
    id: int


class MediaStatusData(TypedDict):
    peer_id: NotRequired[str | None]
    room_id: str | None
    joined: bool
    video: bool
    audio: bool
    error: NotRequired[str | None]


class MediaObservedData(TypedDict):
    candidate_id: str
    video: bool | None
    """None: the proctor's page no longer watches the candidate."""
    at: int
    """The page's own time (epoch ms), for the log; the hub times the observation when it arrives."""


class FlagData(TypedDict):
    candidate_id: str
    note: str
    severity: Literal["low", "medium", "high"]


class WarnData(TypedDict):
    candidate_id: str
    text: str


class SubscribeData(TypedDict):
    event_id: str


@dataclass(frozen=True, slots=True)
class ClientMessage:
    type: str
    id: int | None
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Field:
    kind: type | tuple[type, ...]
    required: bool = True
    nullable: bool = False
    max_len: int | None = None
    choices: tuple[str, ...] | None = None
    minimum: int | None = None


_ID = Field(str, max_len=128)
_SCHEMAS: dict[str, dict[str, Field]] = {
    "auth": {"token": Field(str, max_len=8192)},
    "auth.refresh": {"token": Field(str, max_len=8192)},
    "ping": {},
    "ack": {"id": Field(int, minimum=0)},
    "media.status": {
        "peer_id": Field(str, required=False, nullable=True, max_len=256),
        "room_id": Field(str, nullable=True, max_len=256),
        "joined": Field(bool),
        "video": Field(bool),
        "audio": Field(bool),
        "error": Field(str, required=False, nullable=True, max_len=1000),
        "local": Field(dict, required=False),
    },
    "media.observed": {
        "candidate_id": _ID,
        "video": Field(bool, nullable=True),
        "at": Field(int, minimum=0),
    },
    "finish": {},
    "flag": {
        "candidate_id": _ID,
        "note": Field(str, max_len=2000),
        "severity": Field(str, choices=("low", "medium", "high")),
    },
    "warn": {"candidate_id": _ID, "text": Field(str, max_len=1000)},
    "subscribe": {"event_id": _ID},
}
CLIENT_TYPES = frozenset(_SCHEMAS)


def _check_field(msg_type: str, name: str, spec: Field, value: object) -> None:
    where = f"{msg_type}.data.{name}"
    if value is None:
        if spec.nullable:
            return
        raise BadFrame(f"{where} must not be null")
    # bool is an int in Python; the wire keeps them apart.
    if isinstance(value, bool) and spec.kind is not bool:
        raise BadFrame(f"{where} has the wrong type")
    if not isinstance(value, spec.kind):
        raise BadFrame(f"{where} has the wrong type")
    if spec.max_len is not None and isinstance(value, str) and not 0 < len(value) <= spec.max_len:
        raise BadFrame(f"{where} must be 1-{spec.max_len} characters")
    if spec.minimum is not None and isinstance(value, int) and value < spec.minimum:
        raise BadFrame(f"{where} must be at least {spec.minimum}")
    if spec.choices is not None and value not in spec.choices:
        raise BadFrame(f"{where} must be one of {', '.join(spec.choices)}")


def _check_local(value: dict[str, Any]) -> None:
    """`media.status.local` (extension E15): {held_s: number >= 0, from: epoch ms | null, quota_short}."""
    where = "media.status.data.local"
    unknown = sorted(k for k in value if k not in ("held_s", "from", "quota_short"))
    if unknown:
        raise BadFrame(f"{where}.{unknown[0]} is not a known field")
    held = value.get("held_s")
    if isinstance(held, bool) or not isinstance(held, int | float) or not 0 <= held <= 1e9:
        raise BadFrame(f"{where}.held_s must be a number of seconds")
    since = value.get("from")
    if since is not None and (isinstance(since, bool) or not isinstance(since, int) or since < 0):
        raise BadFrame(f"{where}.from must be epoch milliseconds or null")
    if not isinstance(value.get("quota_short"), bool):
        raise BadFrame(f"{where}.quota_short must be true or false")


def validate_data(msg_type: str, data: dict[str, Any]) -> None:
    """Check `data` against the schema of a known client message type."""
    for name, spec in _SCHEMAS[msg_type].items():
        if name in data:
            _check_field(msg_type, name, spec, data[name])
        elif spec.required:
            raise BadFrame(f"{msg_type}.data.{name} is missing")
    if msg_type == "media.status" and "local" in data:
        _check_local(data["local"])


def _load(frame: str | bytes, codec: Codec) -> object:
    try:
        if codec is Codec.JSON:
            return orjson.loads(frame)
        if isinstance(frame, str):
            raise BadFrame("msgpack messages must be binary frames")
        return msgpack.unpackb(frame, raw=False, strict_map_key=False)
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as exc:
        raise BadFrame(f"frame is not valid {codec.name.lower()}") from exc


def decode_untrusted(frame: str | bytes, codec: Codec) -> ClientMessage:
    """Parse one client frame into a validated `ClientMessage`, or raise `BadFrame`."""
    envelope = _load(frame, codec)
    if not isinstance(envelope, dict):
        raise BadFrame("a message must be an object")
    msg_type = envelope.get("type")
    if not isinstance(msg_type, str) or not 0 < len(msg_type) <= 64:
        raise BadFrame("'type' must be a non-empty string")
    msg_id = envelope.get("id")
    if msg_id is not None and (isinstance(msg_id, bool) or not isinstance(msg_id, int) or msg_id < 0):
        raise BadFrame("'id' must be a non-negative integer")
    data = envelope.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadFrame("'data' must be an object")
    if msg_type in _SCHEMAS:
        validate_data(msg_type, data)
    return ClientMessage(type=msg_type, id=msg_id, data=data)


# ---------------------------------------------------------------- server messages

Presence = Literal["online", "reconnecting", "offline", "finished"]
Tristate = Literal["on", "off", "unknown"]


class Hello(TypedDict):
    session_id: str
    user_id: str
    event_id: str
    role: str
    node: str
    heartbeat_s: float
    server_time: int


class CandidateStatus(TypedDict):
    candidate_id: str
    name: str | None
    room_id: str | None
    presence: Presence
    video: Tristate
    recording: Tristate
    open_alerts: int
    flags: int
    since: int


class EventStats(TypedDict):
    event_id: str
    online: int
    reconnecting: int
    offline: int
    finished: int
    proctors: int
    rooms: int
    unwatched_rooms: int
    open_alerts: int
    tokens_refreshed: int


@dataclass(slots=True)
class Outbound:
    """A server message before its per-connection envelope.

    `coalesce_key`: a newer message with the same key replaces this one while it
    still waits in a send queue (status updates: latest wins). Types starting
    with `_` are internal: they reach observers on every node, never a socket.
    """

    type: str
    data: dict[str, Any]
    re: int | None = None
    coalesce_key: str | None = None
    ack_key: object = None
    """Local only: remembered with the message's id, handed back when the client acks it."""
    _encoded: dict[Codec, bytes] = field(default_factory=dict, repr=False)
    _json_frame: bytes | None = field(default=None, repr=False)
    """The whole JSON frame with `%d` where the id and the time go: one format per socket."""

    def encoded_data(self, codec: Codec) -> bytes:
        cached = self._encoded.get(codec)
        if cached is None:
            if codec is Codec.JSON:
                cached = orjson.dumps(self.data)
            else:
                cached = msgpack.packb(self.data, use_bin_type=True)
            self._encoded[codec] = cached
        return cached

    def to_wire(self) -> dict[str, Any]:
        """The message as a plain mapping, for cross-node transport."""
        return {"type": self.type, "data": self.data, "re": self.re, "coalesce_key": self.coalesce_key}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Outbound:
        return cls(type=raw["type"], data=raw["data"], re=raw.get("re"), coalesce_key=raw.get("coalesce_key"))


_MSGPACK_HEAD = b"\x85" + msgpack.packb("type")
_MSGPACK_KEYS = {k: msgpack.packb(k) for k in ("id", "re", "ts", "data")}


def _json_frame(message: Outbound) -> bytes:
    """The message's JSON frame for every socket, `%d` left for the id and the time (a literal `%` in
    the content doubled)."""
    kind = orjson.dumps(message.type).replace(b"%", b"%%")
    re = b"null" if message.re is None else str(message.re).encode()
    data = message.encoded_data(Codec.JSON).replace(b"%", b"%%")
    return b'{"type":%s,"id":%%d,"re":%s,"ts":%%d,"data":%s}' % (kind, re, data)


def encode(message: Outbound, codec: Codec, *, msg_id: int, ts_ms: int) -> str | bytes:
    """The frame for one connection: JSON text or msgpack bytes."""
    frame = encode_bytes(message, codec, msg_id=msg_id, ts_ms=ts_ms)
    return frame.decode() if codec is Codec.JSON else frame


def encode_bytes(message: Outbound, codec: Codec, *, msg_id: int, ts_ms: int) -> bytes:
    """The frame for one connection as bytes, JSON's UTF-8 included: what goes on the wire."""
    if codec is Codec.JSON:
        frame = message._json_frame
        if frame is None:
            frame = message._json_frame = _json_frame(message)
        return frame % (msg_id, ts_ms)
    data = message.encoded_data(codec)
    keys = _MSGPACK_KEYS
    return b"".join(
        (
            _MSGPACK_HEAD,
            msgpack.packb(message.type),
            keys["id"],
            msgpack.packb(msg_id),
            keys["re"],
            msgpack.packb(message.re),
            keys["ts"],
            msgpack.packb(ts_ms),
            keys["data"],
            data,
        )
    )


def error(code: str, message: str, *, re: int | None = None) -> Outbound:
    return Outbound("error", {"code": code, "message": message}, re=re)
