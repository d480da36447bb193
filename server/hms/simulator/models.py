"""The simulated workspace's objects and their JSON shapes (contract §2.2-§2.6).

Plain dataclasses; `*_json` methods give the REST shapes. Times are epoch seconds internally and
are formatted only on the way out (see `times`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from server.hms.simulator import times

# Peer states on the media plane. "disconnected": network lost, inside the reconnect window.
JOINED, DISCONNECTED, LEFT = "joined", "disconnected", "left"


@dataclass
class Room:
    id: str
    name: str
    template_id: str
    region: str
    created_at: float
    updated_at: float
    description: str = ""
    enabled: bool = True
    recording_info: dict[str, Any] | None = None
    large_room: bool = False
    size: int | None = None
    max_duration_seconds: int | None = None
    webhook: dict[str, Any] | None = None
    polls: list[str] = field(default_factory=list)
    active_session_id: str | None = None

    def to_json(self, *, customer_id: str, app_id: str, listed: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "enabled": self.enabled,
            "description": self.description,
            "customer_id": customer_id,
            "customer": customer_id,
            "app_id": app_id,
            "recording_info": self.recording_info or {"enabled": False},
            "recording_source_template": self.recording_info is None,
            "enabled_source_template": False,
            "template_id": self.template_id,
            "template": self.template_id,
            "region": self.region,
            "large_room": self.large_room,
            "polls": list(self.polls),
            "created_at": times.millis(self.created_at),
            "updated_at": times.millis(self.updated_at),
        }
        for name in ("size", "max_duration_seconds", "webhook"):
            if getattr(self, name) is not None:
                body[name] = getattr(self, name)
        if listed:
            body["key"] = f"{customer_id}:{self.name}"
        return body


@dataclass
class Track:
    id: str
    stream_id: str
    type: str  # "audio" | "video"
    started_at: float
    source: str = "regular"
    mute: bool = False
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "stream_id": self.stream_id,
            "mute": self.mute,
            "type": self.type,
            "source": self.source,
            "started_at": times.nanos(self.started_at),
            "description": self.description,
        }


@dataclass
class Recording:
    """One peer's stream recording (contract §4.1, stream recording): first video publish to leave."""

    id: str
    stream_id: str
    started_at: float
    stopped_at: float | None = None


@dataclass
class Peer:
    id: str
    room_id: str
    session_id: str
    user_id: str
    role: str
    name: str
    metadata: str
    joined_at: float
    token_jti: str
    token_exp: int
    stream_id: str
    state: str = JOINED
    left_at: float | None = None
    leave_reason: str | None = None
    leave_message: str = ""
    disconnected_at: float | None = None
    tracks: dict[str, Track] = field(default_factory=dict)
    recordings: list[Recording] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    window: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def present(self) -> bool:
        return self.state != LEFT

    @property
    def recording(self) -> Recording | None:
        """The running recording, if any."""
        if self.recordings and self.recordings[-1].stopped_at is None:
            return self.recordings[-1]
        return None

    def to_json(self, *, tracks: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "user_id": self.user_id,
            "metadata": self.metadata,
            "role": self.role,
            "joined_at": times.nanos(self.joined_at),
        }
        if tracks:
            body["tracks"] = {t.id: t.to_json() for t in self.tracks.values()}
        return body

    def session_json(self) -> dict[str, Any]:
        body = {
            "id": self.id,
            "session_id": self.session_id,
            "name": self.name,
            "role": self.role,
            "user_id": self.user_id,
            "joined_at": times.nanos(self.joined_at),
        }
        if self.left_at is not None:
            body["left_at"] = times.nanos(self.left_at)
        return body

    def media_json(self) -> dict[str, Any]:
        """The media plane's view of a peer (`GET /media/peers/{peer_id}`)."""
        return {
            **self.to_json(tracks=True),
            "room_id": self.room_id,
            "session_id": self.session_id,
            "state": self.state,
            "token_exp": self.token_exp,
            "left_at": times.nanos(self.left_at) if self.left_at is not None else None,
            "leave_reason": self.leave_reason,
            "leave_message": self.leave_message,
            "recording": self.recording is not None,
            "messages": list(self.messages),
        }


@dataclass
class Session:
    id: str
    room_id: str
    created_at: float
    updated_at: float
    peers: dict[str, Peer] = field(default_factory=dict)
    ended_at: float | None = None

    @property
    def active(self) -> bool:
        return self.ended_at is None

    def present_peers(self) -> list[Peer]:
        return [p for p in self.peers.values() if p.present]

    def to_json(self, *, customer_id: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "room_id": self.room_id,
            "customer_id": customer_id,
            "active": self.active,
            "peers": {p.id: p.session_json() for p in self.peers.values()},
            "created_at": times.nanos(self.created_at),
            "updated_at": times.nanos(self.updated_at),
        }


@dataclass
class Asset:
    """A recording asset of type "stream" (contract §2.6)."""

    id: str
    job_id: str
    room_id: str
    session_id: str
    status: str  # "completed" | "failed"
    key: str
    path: str
    size: int
    duration: int
    created_at: float
    metadata: dict[str, Any]
    type: str = "stream"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job_id": self.job_id,
            "room_id": self.room_id,
            "session_id": self.session_id,
            "type": self.type,
            "status": self.status,
            "path": self.path,
            "size": self.size,
            "duration": self.duration,
            "created_at": times.millis(self.created_at),
            "thumbnails": None,
            "metadata": dict(self.metadata),
        }
