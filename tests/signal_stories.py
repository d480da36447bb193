"""Signals for timeline stories in unit tests: one candidate in room r1, session s1 unless named."""

from __future__ import annotations

from server.recording.monitor.timeline import Signal


def online(at: float) -> Signal:
    return Signal(f"p:{at}:1", at, "online")


def offline(at: float) -> Signal:
    return Signal(f"p:{at}:0", at, "offline")


def media(at: float, *, joined: bool = True, video: bool = True) -> Signal:
    return Signal(f"m:{at}:{joined}:{video}", at, "media", room_id="r1", joined=joined, video=video)


def join(peer: str, at: float, session: str = "s1") -> Signal:
    return Signal(f"join:{peer}", at, "join", peer_id=peer, room_id="r1", session_id=session)


def leave(peer: str, at: float, session: str = "s1") -> Signal:
    return Signal(f"leave:{peer}", at, "leave", peer_id=peer, room_id="r1", session_id=session)


def recorded(peer: str, at: float, duration: float) -> Signal:
    return Signal(
        f"rec:{peer}", at, "recorded", peer_id=peer, room_id="r1", session_id="s1", duration_s=duration
    )


def failed(peer: str, at: float) -> Signal:
    return Signal(f"rec:{peer}", at, "failed", peer_id=peer, room_id="r1", session_id="s1", error="INTERNAL")


def closed(at: float, session: str = "s1") -> Signal:
    return Signal(f"close:{session}", at, "closed", room_id="r1", session_id=session)


def backfilled(segment: str, at: float, duration: float) -> Signal:
    """A segment the candidate's page uploaded and the hub accepted (extension E15)."""
    return Signal(
        f"b:{segment}",
        at,
        "backfilled",
        room_id="r1",
        recording_id=segment,
        duration_s=duration,
        path=segment,
    )
