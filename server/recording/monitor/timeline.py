"""One candidate's timeline: signals in, intervals, gaps and live state out. Pure: no I/O, no clock.

A candidate is one user id across many 100ms peers (every rejoin is a new peer). The signals are
facts with their own time: hub presence, the client's own `media.status`, 100ms peer join/leave,
session close and per-peer `stream.recording.*`. Each has a `key` naming the fact, so the same fact
from two sources (a webhook and the REST reconciler, or a duplicate delivery) is kept once, and
`evaluate` sorts by time, so any order of arrival gives the same timeline.

What is derived (see `Rules`):
- sitting: from the first time the candidate is online in the hub until it finishes;
- video: the client says it is in the room with its camera on, while its hub socket is up
  (100ms sends no webhook when a camera stops, contract §3.5, so the client is the live signal);
- a video gap: sitting without video for longer than `threshold_s`; its cause is what was missing
  when it began (socket lost, not in the room, camera off);
- recorded: each peer's stream recording once 100ms says it succeeded, ending at the peer's leave;
- a failed recording is a gap at once; a recording still absent `deadline_s` after its session
  closed is a gap (`recording.missing`), for every peer that was in the room with video.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal

from server.recording.monitor import intervals as iv
from server.recording.monitor.intervals import Intervals

SignalKind = Literal[
    "online", "offline", "finished", "media", "join", "leave", "recorded", "failed", "closed"
]
Tristate = Literal["on", "off", "unknown"]

VIDEO_GAP = "video.gap"
RECORDING_FAILED = "recording.failed"
RECORDING_MISSING = "recording.missing"


@dataclass(frozen=True, slots=True)
class Signal:
    key: str
    at: float
    kind: SignalKind
    peer_id: str = ""
    room_id: str = ""
    session_id: str = ""
    joined: bool = False
    video: bool = False
    duration_s: float = 0.0
    size: int = 0
    recording_id: str = ""
    path: str = ""
    url: str = ""
    error: str = ""

    def order(self) -> tuple[Any, ...]:
        """A total order: by time, then by every field, so ties never depend on arrival."""
        return (
            self.at,
            self.key,
            self.kind,
            self.peer_id,
            self.room_id,
            self.session_id,
            self.joined,
            self.video,
            self.duration_s,
            self.size,
            self.recording_id,
            self.path,
            self.url,
            self.error,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in self.__slots__
            if getattr(self, k) not in ("", 0, 0.0, False) or k in ("key", "at", "kind")
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Signal:
        return cls(**raw)


@dataclass(frozen=True, slots=True)
class Rules:
    threshold_s: float = 10.0
    deadline_s: float = 600.0


@dataclass(frozen=True, slots=True)
class Gap:
    kind: str
    cause: str
    start: float
    end: float | None
    peer_id: str = ""
    room_id: str = ""
    session_id: str = ""


@dataclass(frozen=True, slots=True)
class PeerRecording:
    """What became of one peer's stream recording."""

    peer_id: str
    room_id: str
    session_id: str
    start: float | None
    end: float | None
    status: Literal["recorded", "failed", "missing", "pending", "not_expected"]
    signal: Signal | None = None
    due_at: float | None = None


@dataclass(frozen=True)
class Timeline:
    present: Intervals
    sitting: Intervals
    in_room: Intervals
    video: Intervals
    recorded: Intervals
    gaps: tuple[Gap, ...]
    peers: tuple[PeerRecording, ...]
    video_state: Tristate
    recording_state: Tristate
    next_check: float | None
    room_id: str | None = None

    def coverage(self, now: float) -> tuple[float, float]:
        """(expected seconds, recorded seconds) over the sitting."""
        expected = iv.total(self.sitting, until=now)
        return expected, iv.total(iv.intersect(self.recorded, self.sitting), until=now)


def collect(signals: Iterable[Signal]) -> list[Signal]:
    """One signal per key (the earliest in the total order), sorted by time."""
    best: dict[str, Signal] = {}
    for signal in signals:
        held = best.get(signal.key)
        if held is None or signal.order() < held.order():
            best[signal.key] = signal
    return sorted(best.values(), key=Signal.order)


def _cause(at: float, present: Intervals, joined: Intervals) -> str:
    """What was missing when a gap began; the client's own word on being in the room comes first."""
    if not iv.contains(present, at):
        return "socket_lost"
    if not iv.contains(joined, at):
        return "peer_left"
    return "video_unpublished"


def _video_gaps(
    sitting: Intervals, seen: Intervals, present: Intervals, joined: Intervals, rules: Rules, now: float
) -> tuple[list[Gap], float | None]:
    gaps: list[Gap] = []
    next_check: float | None = None
    for start, end in iv.subtract(sitting, seen):
        if start > now:
            continue
        length = (now if end is None or end > now else end) - start
        if length >= rules.threshold_s:
            closed = end if end is not None and end <= now else None
            gaps.append(Gap(VIDEO_GAP, _cause(start, present, joined), start, closed))
        elif end is None or end > now:
            due = start + rules.threshold_s
            next_check = due if next_check is None else min(next_check, due)
    return gaps, next_check


def _peers(ordered: list[Signal], video: Intervals, rules: Rules, now: float) -> tuple[PeerRecording, ...]:
    joins = {s.peer_id: s for s in ordered if s.kind == "join"}
    leaves = {s.peer_id: s for s in ordered if s.kind == "leave"}
    outcomes: dict[str, Signal] = {}
    for s in ordered:
        if s.kind in ("recorded", "failed") and s.peer_id not in outcomes:
            outcomes[s.peer_id] = s  # the earliest outcome of a peer decides it
    closed = {s.session_id: s.at for s in ordered if s.kind == "closed"}
    out: list[PeerRecording] = []
    for peer_id in sorted(set(joins) | set(outcomes)):
        join, leave, outcome = joins.get(peer_id), leaves.get(peer_id), outcomes.get(peer_id)
        first = join or outcome
        assert first is not None
        start = join.at if join else None
        end = leave.at if leave else None
        base = PeerRecording(peer_id, first.room_id, first.session_id, start, end, "pending")
        if outcome is not None:
            if outcome.kind == "recorded":
                stop = end if end is not None else outcome.at
                out.append(
                    replace(
                        base, start=stop - outcome.duration_s, end=stop, status="recorded", signal=outcome
                    )
                )
            else:
                out.append(
                    replace(base, end=end if end is not None else outcome.at, status="failed", signal=outcome)
                )
            continue
        if start is None or not iv.overlaps(video, start, end):
            out.append(replace(base, status="not_expected"))
            continue
        close = closed.get(base.session_id)
        due = None if close is None or close < start else close + rules.deadline_s
        status: Literal["missing", "pending"] = "missing" if due is not None and now >= due else "pending"
        out.append(replace(base, status=status, due_at=due))
    return tuple(out)


def _recording_gaps(peers: tuple[PeerRecording, ...]) -> list[Gap]:
    gaps = []
    for p in peers:
        if p.status in ("failed", "missing"):
            kind, cause = (
                (RECORDING_FAILED, "recording_failed")
                if p.status == "failed"
                else (RECORDING_MISSING, "recording_missing")
            )
            start = p.start if p.start is not None else (p.end or 0.0)
            gaps.append(Gap(kind, cause, start, p.end, p.peer_id, p.room_id, p.session_id))
    return gaps


def evaluate(signals: Iterable[Signal], now: float, rules: Rules) -> Timeline:
    ordered = collect(signals)
    present = iv.from_toggles((s.at, s.kind == "online") for s in ordered if s.kind in ("online", "offline"))
    media = [s for s in ordered if s.kind == "media"]
    client_joined = iv.from_toggles((s.at, s.joined) for s in media)
    video = iv.from_toggles((s.at, s.joined and s.video) for s in media)
    peer_spans: dict[str, iv.Interval] = {s.peer_id: (s.at, None) for s in ordered if s.kind == "join"}
    for s in ordered:
        if s.kind == "leave" and s.peer_id in peer_spans:
            peer_spans[s.peer_id] = (peer_spans[s.peer_id][0], s.at)
    in_room = iv.union(client_joined, iv.normalize(peer_spans.values()))
    finished = next((s.at for s in ordered if s.kind == "finished"), None)
    sitting: Intervals = ()
    if present:
        first = present[0][0]
        sitting = iv.normalize([(first, finished)])
    seen = iv.intersect(video, present)
    video_gaps, next_check = _video_gaps(sitting, seen, present, client_joined, rules, now)
    peers = _peers(ordered, video, rules, now)
    for p in peers:
        if p.status == "pending" and p.due_at is not None:
            next_check = p.due_at if next_check is None else min(next_check, p.due_at)
    recorded = iv.normalize((p.start, p.end) for p in peers if p.status == "recorded" and p.start is not None)
    gaps = tuple(sorted([*video_gaps, *_recording_gaps(peers)], key=lambda g: (g.start, g.kind, g.peer_id)))
    sitting_now = iv.contains(sitting, now)
    video_state: Tristate = "unknown" if not media else ("on" if iv.contains(seen, now) else "off")
    failed_now = any(p.status == "failed" and (p.end is None or p.end >= now) for p in peers)
    recording_state: Tristate = "unknown"
    if media:
        recording_state = "on" if sitting_now and video_state == "on" and not failed_now else "off"
    room = media[-1].room_id if media else None
    return Timeline(
        present=present,
        sitting=sitting,
        in_room=in_room,
        video=seen,
        recorded=recorded,
        gaps=gaps,
        peers=peers,
        video_state=video_state,
        recording_state=recording_state,
        next_check=next_check,
        room_id=room or None,
    )
