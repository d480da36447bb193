"""What 100ms's REST API answers (contract §2), parsed once and tolerantly.

Pure: `parse_*_untrusted` take decoded JSON and return frozen dataclasses, or raise `BadAnswer`
when the shape is beyond tolerating (not an object, no `id`). Otherwise they forgive what the
contract warns about (§5 item 14): unknown fields are ignored, `size`/`duration` may be ints or
digit strings, missing strings become `""`, timestamps (RFC 3339, ms or ns fractions, even
`0001-01-01T00:00:00Z`) are kept as the strings 100ms sent. Every object keeps its `raw` dict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")
Json = dict[str, Any]


class BadAnswer(ValueError):
    """An answer whose shape the client cannot use."""


# -- field readers: forgiving, never raising ---------------------------------------------------


def _str(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _opt_str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _int(raw: Mapping[str, Any], key: str) -> int | None:
    """An int sent as an int, a float or a numeric string; None for anything else."""
    value = raw.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value.strip()))
        except ValueError:
            return None
    return None


def _bool(raw: Mapping[str, Any], key: str, default: bool = False) -> bool:
    value = raw.get(key)
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return default


def _dict(raw: Mapping[str, Any], key: str) -> Json:
    value = raw.get(key)
    return value if isinstance(value, dict) else {}


def _opt_dict(raw: Mapping[str, Any], key: str) -> Json | None:
    value = raw.get(key)
    return value if isinstance(value, dict) else None


def _strs(raw: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = raw.get(key)
    if not isinstance(value, list):
        return ()
    return tuple(v if isinstance(v, str) else str(v) for v in value if v is not None)


def _object(raw: object, what: str) -> Json:
    if not isinstance(raw, dict):
        raise BadAnswer(f"{what} is not a JSON object: {type(raw).__name__}")
    return raw


def _id(raw: Json, what: str) -> str:
    value = raw.get("id")
    if not isinstance(value, str) or not value:
        raise BadAnswer(f"{what} has no id")
    return value


def _map(raw: object, what: str, parse: Callable[[object], T]) -> dict[str, T]:
    """A JSON object of id -> item (peers, tracks); `null` is an empty map."""
    if raw is None:
        return {}
    return {str(key): parse(value) for key, value in _object(raw, what).items()}


# -- rooms -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Room:
    id: str
    name: str
    enabled: bool
    description: str = ""
    template_id: str = ""
    region: str = ""
    customer_id: str = ""
    app_id: str = ""
    recording_info: Json | None = None
    webhook: Json | None = None
    size: int | None = None
    max_duration_seconds: int | None = None
    large_room: bool = False
    created_at: str = ""
    updated_at: str = ""
    raw: Json = field(default_factory=dict, compare=False, repr=False)


def parse_room_untrusted(raw: object) -> Room:
    obj = _object(raw, "room")
    return Room(
        id=_id(obj, "room"),
        name=_str(obj, "name"),
        enabled=_bool(obj, "enabled", default=True),
        description=_str(obj, "description"),
        template_id=_str(obj, "template_id"),
        region=_str(obj, "region"),
        customer_id=_str(obj, "customer_id"),
        app_id=_str(obj, "app_id"),
        recording_info=_opt_dict(obj, "recording_info"),
        webhook=_opt_dict(obj, "webhook"),
        size=_int(obj, "size"),
        max_duration_seconds=_int(obj, "max_duration_seconds"),
        large_room=_bool(obj, "large_room"),
        created_at=_str(obj, "created_at"),
        updated_at=_str(obj, "updated_at"),
        raw=obj,
    )


# -- active rooms and peers --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Track:
    id: str
    stream_id: str = ""
    type: str = ""
    source: str = ""
    mute: bool = False
    started_at: str = ""
    description: str = ""
    raw: Json = field(default_factory=dict, compare=False, repr=False)


def parse_track_untrusted(raw: object) -> Track:
    obj = _object(raw, "track")
    return Track(
        id=_id(obj, "track"),
        stream_id=_str(obj, "stream_id"),
        type=_str(obj, "type"),
        source=_str(obj, "source"),
        mute=_bool(obj, "mute"),
        started_at=_str(obj, "started_at"),
        description=_str(obj, "description"),
        raw=obj,
    )


@dataclass(frozen=True, slots=True)
class Peer:
    """A peer in a running session; `tracks` only on `get_peer`."""

    id: str
    name: str = ""
    user_id: str = ""
    role: str = ""
    metadata: str = ""
    joined_at: str = ""
    tracks: dict[str, Track] = field(default_factory=dict)
    raw: Json = field(default_factory=dict, compare=False, repr=False)


def parse_peer_untrusted(raw: object) -> Peer:
    obj = _object(raw, "peer")
    return Peer(
        id=_id(obj, "peer"),
        name=_str(obj, "name"),
        user_id=_str(obj, "user_id"),
        role=_str(obj, "role"),
        metadata=_str(obj, "metadata"),
        joined_at=_str(obj, "joined_at"),
        tracks=_map(obj.get("tracks"), "tracks", parse_track_untrusted),
        raw=obj,
    )


def parse_peers_untrusted(raw: object) -> dict[str, Peer]:
    """`{"peers": {"<peer_id>": {...}}}` (a map; empty when nobody matches)."""
    return _map(_object(raw, "peer list").get("peers"), "peers", parse_peer_untrusted)


@dataclass(frozen=True, slots=True)
class ActiveRoom:
    id: str
    name: str = ""
    customer_id: str = ""
    session_id: str = ""
    session_created_at: str = ""
    peer_ids: tuple[str, ...] = ()
    raw: Json = field(default_factory=dict, compare=False, repr=False)


def parse_active_room_untrusted(raw: object) -> ActiveRoom:
    obj = _object(raw, "active room")
    session = _dict(obj, "session")
    return ActiveRoom(
        id=_id(obj, "active room"),
        name=_str(obj, "name"),
        customer_id=_str(obj, "customer_id"),
        session_id=_str(session, "id"),
        session_created_at=_str(session, "created_at"),
        peer_ids=_strs(session, "peers"),
        raw=obj,
    )


# -- sessions ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionPeer:
    """A peer of a session's history; `left_at` is None while it is still in the room."""

    id: str
    session_id: str = ""
    name: str = ""
    role: str = ""
    user_id: str = ""
    joined_at: str = ""
    left_at: str | None = None
    raw: Json = field(default_factory=dict, compare=False, repr=False)


def parse_session_peer_untrusted(raw: object) -> SessionPeer:
    obj = _object(raw, "session peer")
    return SessionPeer(
        id=_id(obj, "session peer"),
        session_id=_str(obj, "session_id"),
        name=_str(obj, "name"),
        role=_str(obj, "role"),
        user_id=_str(obj, "user_id"),
        joined_at=_str(obj, "joined_at"),
        left_at=_opt_str(obj, "left_at"),
        raw=obj,
    )


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    room_id: str = ""
    customer_id: str = ""
    active: bool = False
    peers: dict[str, SessionPeer] = field(default_factory=dict)
    created_at: str = ""
    updated_at: str = ""
    raw: Json = field(default_factory=dict, compare=False, repr=False)


def parse_session_untrusted(raw: object) -> Session:
    obj = _object(raw, "session")
    return Session(
        id=_id(obj, "session"),
        room_id=_str(obj, "room_id"),
        customer_id=_str(obj, "customer_id"),
        active=_bool(obj, "active"),
        peers=_map(obj.get("peers"), "session peers", parse_session_peer_untrusted),
        created_at=_str(obj, "created_at"),
        updated_at=_str(obj, "updated_at"),
        raw=obj,
    )


# -- recordings --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordingAsset:
    id: str
    type: str = ""
    status: str = ""
    room_id: str = ""
    session_id: str = ""
    job_id: str = ""
    path: str = ""
    size: int | None = None
    duration: int | None = None
    created_at: str = ""
    metadata: Json = field(default_factory=dict)
    raw: Json = field(default_factory=dict, compare=False, repr=False)


def parse_recording_asset_untrusted(raw: object) -> RecordingAsset:
    obj = _object(raw, "recording asset")
    return RecordingAsset(
        id=_id(obj, "recording asset"),
        type=_str(obj, "type"),
        status=_str(obj, "status"),
        room_id=_str(obj, "room_id"),
        session_id=_str(obj, "session_id"),
        job_id=_str(obj, "job_id"),
        path=_str(obj, "path"),
        size=_int(obj, "size"),
        duration=_int(obj, "duration"),
        created_at=_str(obj, "created_at"),
        metadata=_dict(obj, "metadata"),
        raw=obj,
    )


@dataclass(frozen=True, slots=True)
class Recording:
    """A composite recording job (§2.5); `started_at` etc. are None until they happen."""

    id: str
    room_id: str = ""
    session_id: str = ""
    status: str = ""
    meeting_url: str = ""
    started_by: str = ""
    stopped_by: str = ""
    created_at: str = ""
    started_at: str | None = None
    stopped_at: str | None = None
    updated_at: str = ""
    asset_types: tuple[str, ...] = ()
    assets: tuple[RecordingAsset, ...] = ()
    raw: Json = field(default_factory=dict, compare=False, repr=False)


def parse_recording_untrusted(raw: object) -> Recording:
    obj = _object(raw, "recording")
    assets = obj.get("recording_assets")
    return Recording(
        id=_id(obj, "recording"),
        room_id=_str(obj, "room_id"),
        session_id=_str(obj, "session_id"),
        status=_str(obj, "status"),
        meeting_url=_str(obj, "meeting_url"),
        started_by=_str(obj, "started_by"),
        stopped_by=_str(obj, "stopped_by"),
        created_at=_str(obj, "created_at"),
        started_at=_opt_str(obj, "started_at"),
        stopped_at=_opt_str(obj, "stopped_at"),
        updated_at=_str(obj, "updated_at"),
        asset_types=_strs(obj, "asset_types"),
        assets=tuple(parse_recording_asset_untrusted(a) for a in assets) if isinstance(assets, list) else (),
        raw=obj,
    )


def parse_presigned_url_untrusted(raw: object) -> str:
    """`{"id", "path", "url", "expiry"}` → the url."""
    url = _object(raw, "presigned url").get("url")
    if not isinstance(url, str) or not url:
        raise BadAnswer("presigned url answer has no url")
    return url


# -- pagination --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a `{limit, data, last}` list; `last` is the next `start`, or None at the end."""

    data: tuple[Json, ...]
    last: str | None
    limit: int | None


def parse_page_untrusted(raw: object) -> Page:
    obj = _object(raw, "list")
    data = obj.get("data")
    if data is None:
        data = []
    if not isinstance(data, list):
        raise BadAnswer(f"list data is not an array: {type(data).__name__}")
    return Page(tuple(_object(item, "list item") for item in data), _opt_str(obj, "last"), _int(obj, "limit"))


def next_start(page: Page, start: str | None, requested: int) -> str | None:
    """Where the next page starts, or None when this one was the last (empty, short, no `last`,
    or a `last` that does not move: a server bug would otherwise loop forever)."""
    if not page.data or page.last is None or page.last == start:
        return None
    if len(page.data) < (page.limit or requested):
        return None
    return page.last


# -- request bodies ----------------------------------------------------------------------------


def recording_info_for_s3(
    bucket: str, prefix: str, region: str, key: str | None = None, secret: str | None = None
) -> Json:
    """A room's `recording_info` (§2.2) uploading legacy SFU recordings to our own S3 bucket.

    Credentials go in only as a pair (100ms needs GetObject + PutObject with them); without
    them 100ms must already be allowed to write to the bucket.
    """
    if (key is None) != (secret is None):
        raise ValueError("recording_info_for_s3 needs both key and secret, or neither")
    upload: Json = {"type": "s3", "location": bucket}
    if prefix:
        upload["prefix"] = prefix
    upload["options"] = {"region": region}
    if key is not None:
        upload["credentials"] = {"key": key, "secret": secret}
    return {"enabled": True, "upload_info": upload}
