"""From what the hub and 100ms say to timeline signals. Pure: the monitor does the lookups.

Each signal's key names the fact, not the message, so a webhook delivered twice, replayed, or
learnt again from the REST reconciler is one fact. Times come from the message itself
(`joined_at`, `left_at`, ... with nanoseconds), never from when it arrived.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from server.recording.intake.envelope import parse_time
from server.recording.monitor.timeline import Signal
from server.store.records import UserRecord


@dataclass(frozen=True, slots=True)
class WebhookFact:
    """What one 100ms event says about a room: a user's signal, or a session closing."""

    room_id: str
    user_id: str | None
    signal: Signal
    session_closed: bool = False


def peer_signal(
    name: Literal["join", "leave"], peer_id: str, at: float, room_id: str, session_id: str
) -> Signal:
    """A peer joining or leaving: one fact per peer and direction, whoever reports it."""
    return Signal(f"{name}:{peer_id}", at, name, peer_id=peer_id, room_id=room_id, session_id=session_id)


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def webhook_fact(kind: str, data: dict[str, Any], sent_at: float, candidate_role: str) -> WebhookFact | None:
    """The fact in a 100ms event, or None when it says nothing the timeline uses."""
    room_id = str(data.get("room_id") or "")
    session_id = str(data.get("session_id") or "")
    peer_id = str(data.get("peer_id") or "")
    user_id = data.get("user_id") if isinstance(data.get("user_id"), str) else None
    if not room_id:
        return None
    if kind in ("peer.join.success", "peer.leave.success"):
        if data.get("role") != candidate_role or not peer_id or user_id is None:
            return None
        joining = kind == "peer.join.success"
        at = parse_time(data.get("joined_at" if joining else "left_at")) or sent_at
        name = "join" if joining else "leave"
        signal = Signal(
            f"{name}:{peer_id}", at, name, peer_id=peer_id, room_id=room_id, session_id=session_id
        )
        return WebhookFact(room_id, user_id, signal)
    if kind == "session.close.success":
        at = parse_time(data.get("session_stopped_at")) or sent_at
        signal = Signal(f"close:{session_id}", at, "closed", room_id=room_id, session_id=session_id)
        return WebhookFact(room_id, None, signal, session_closed=True)
    if kind in ("stream.recording.success", "stream.recording.failure"):
        if not peer_id or user_id is None:
            return None
        recording_id = str(data.get("recording_id") or "")
        ok = kind.endswith("success")
        signal = Signal(
            f"{'rec' if ok else 'fail'}:{peer_id}:{recording_id}",
            sent_at,
            "recorded" if ok else "failed",
            peer_id=peer_id,
            room_id=room_id,
            session_id=session_id,
            duration_s=_number(data.get("duration")),
            size=int(_number(data.get("size"))),
            recording_id=recording_id,
            path=str(data.get("recording_path") or ""),
            url=str(data.get("recording_presigned_url") or ""),
            error=str(data.get("error_message") or "") if not ok else "",
        )
        return WebhookFact(room_id, user_id, signal)
    return None


def presence_signal(record: UserRecord) -> Signal:
    """A candidate's presence as of its last change (`since`): the key makes re-announcements one fact."""
    if record.presence == "finished":
        return Signal("finished", record.since, "finished")
    kind = "online" if record.presence == "online" else "offline"
    return Signal(f"p:{int(record.since * 1000)}:{kind}", record.since, kind)


def media_signal(data: dict[str, Any], at: float, source: str) -> Signal:
    """The client's own view of its 100ms connection (`media.status`), as received at `at`."""
    joined, video = bool(data.get("joined")), bool(data.get("video"))
    return Signal(
        f"m:{source}:{int(at * 1000)}",
        at,
        "media",
        peer_id=str(data.get("peer_id") or ""),
        room_id=str(data.get("room_id") or ""),
        joined=joined,
        video=joined and video,
    )


def observed_signal(observer: str, video: bool | None, at: float) -> Signal:
    """What a proctor's page sees of the candidate's video (`media.observed`), as received at `at`;
    `video` None: it stopped watching."""
    kind = "unobserved" if video is None else "observed"
    return Signal(f"o:{observer}:{int(at * 1000)}", at, kind, observer=observer, video=bool(video))
