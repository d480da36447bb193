"""One candidate's timeline: signals in, intervals, gaps and live state out. Pure: no I/O, no clock.

A candidate is one user id across many 100ms peers (every rejoin is a new peer). The signals are
facts with their own time: hub presence, the client's own `media.status`, 100ms peer join/leave,
session close and per-peer `stream.recording.*`. Each has a `key` naming the fact, so the same fact
from two sources (a webhook and the REST reconciler, or a duplicate delivery) is kept once, and
`evaluate` sorts by time, so any order of arrival gives the same timeline.

What is derived (see `Rules`):
- sitting: from the first time the candidate is online in the hub until it finishes;
- video: the client says it is in the room with its camera on, while its hub socket is up
  (100ms sends no webhook when a camera stops, contract §3.5, so the client is the live signal),
  and 100ms has not said otherwise: after a leave of its peer, or its session's close, the client's
  word counts again only from a new join (witnesses.py);
- a video gap: sitting without video for longer than `threshold_s`; its cause is what was missing
  when it began (socket lost, not in the room, camera off, or 100ms saw the peer leave);
- a dispute: the client claims video while every proctor's page that watches it sees none, for
  longer than `threshold_s` (`video.disputed`, with both reports);
- recorded: each peer's stream recording once 100ms says it succeeded, ending at the peer's leave;
- backfilled: each segment the candidate's page uploaded and the hub accepted (extension E15); a
  gap keeps its cause and counts its backfilled seconds, and is `backfilled` once no hole of
  `backfill_slack_s` is left in it;
- a failed recording is a gap at once; a recording still absent `deadline_s` after its session
  closed is a gap (`recording.missing`), for every peer that was in the room with video.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal

from server.recording.monitor import intervals as iv
from server.recording.monitor import witnesses as wit
from server.recording.monitor.intervals import Intervals

SignalKind = Literal[
    "online",
    "offline",
    "finished",
    "media",
    "join",
    "leave",
    "recorded",
    "failed",
    "closed",
    "observed",
    "unobserved",
    "fold",
    "backfilled",
]
Tristate = Literal["on", "off", "unknown"]

PRESENCE = "presence"
"""The stream name of a fold of presence toggles."""

VIDEO_GAP = "video.gap"
VIDEO_DISPUTED = "video.disputed"
SPAN_KINDS = frozenset({VIDEO_GAP, VIDEO_DISPUTED})
"""Alerts that last as long as their span: open while it goes on, closed when it ends."""
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
    observer: str = ""
    """`observed`/`unobserved`: the proctor whose page saw it; `fold`: the observer whose views it folds."""
    stream: str = ""
    """`fold` of no observer: "" the page's claims, "presence" the hub socket's online/offline."""
    toggles: tuple[tuple[float, int], ...] = ()
    """`fold`: the stream's old toggles, compacted (witnesses.fold)."""

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
            self.observer,
            self.stream,
            self.toggles,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in self.__slots__
            if getattr(self, k) not in ("", 0, 0.0, False) or k in ("key", "at", "kind")
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Signal:
        if "toggles" in raw:
            raw = {**raw, "toggles": tuple((float(at), int(state)) for at, state in raw["toggles"])}
        return cls(**raw)


@dataclass(frozen=True, slots=True)
class Rules:
    threshold_s: float = 10.0
    deadline_s: float = 600.0
    backfill_slack_s: float = 1.0
    """Holes shorter than this between backfilled segments do not count (a recorder's restart)."""


@dataclass(frozen=True, slots=True)
class Gap:
    kind: str
    cause: str
    start: float
    end: float | None
    peer_id: str = ""
    room_id: str = ""
    session_id: str = ""
    observed: tuple[tuple[str, bool], ...] = ()
    """A dispute's observers and what each saw when it began (True: video)."""
    backfilled_s: float = 0.0
    """Seconds of the gap (up to now) that backfilled segments cover."""
    backfilled: bool = False
    """The gap has ended and backfilled segments cover it, up to holes of `backfill_slack_s`."""


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
    hms_out: Intervals = ()
    """Where 100ms said the candidate was not in the room."""
    disputed: Intervals = ()
    backfilled: Intervals = ()
    """Time covered by segments the candidate's page uploaded (extension E15)."""
    backfill_segments: tuple[Signal, ...] = ()
    """The `backfilled` signals themselves (the archive lists each segment)."""

    def coverage(self, now: float) -> tuple[float, float]:
        """(expected seconds, recorded seconds) over the sitting."""
        expected = iv.total(self.sitting, until=now)
        return expected, iv.total(iv.intersect(self.recorded, self.sitting), until=now)

    def backfill_share(self, now: float) -> float:
        """Sitting seconds covered by backfilled segments and not by a recording."""
        extra = iv.subtract(iv.intersect(self.backfilled, self.sitting), self.recorded)
        return iv.total(extra, until=now)


def collect(signals: Iterable[Signal]) -> list[Signal]:
    """One signal per key (the earliest in the total order), sorted by time."""
    best: dict[str, Signal] = {}
    for signal in signals:
        held = best.get(signal.key)
        if held is None or signal.order() < held.order():
            best[signal.key] = signal
    return sorted(best.values(), key=Signal.order)


@dataclass(frozen=True, slots=True)
class _Video:
    """What each witness said, as intervals."""

    present: Intervals
    joined: Intervals
    claimed: Intervals
    hms_out: Intervals


def _cause(at: float, video: _Video) -> str:
    """What was missing when a gap began; the client's own word comes first, 100ms's after it."""
    if not iv.contains(video.present, at):
        return "socket_lost"
    if not iv.contains(video.joined, at):
        return "peer_left"
    if not iv.contains(video.claimed, at):
        return "video_unpublished"
    return "peer_left_100ms"


def _long_spans(
    spans: Intervals, rules: Rules, now: float
) -> tuple[list[tuple[float, float | None]], float | None]:
    """The spans that lasted `threshold_s` by `now` (end None while going on), and when the next
    short one still going on would reach it."""
    long: list[tuple[float, float | None]] = []
    next_check: float | None = None
    for start, end in spans:
        if start > now:
            continue
        length = (now if end is None or end > now else end) - start
        if length >= rules.threshold_s:
            long.append((start, end if end is not None and end <= now else None))
        elif end is None or end > now:
            due = start + rules.threshold_s
            next_check = due if next_check is None else min(next_check, due)
    return long, next_check


def _streams(
    ordered: list[Signal],
) -> tuple[list[wit.Toggle], list[wit.Toggle], dict[str, list[wit.Toggle]]]:
    """Presence (1 online, 0 not), the page's claims and each observer's views as toggle streams."""
    presence: list[wit.Toggle] = []
    claims: list[wit.Toggle] = []
    observers: dict[str, list[wit.Toggle]] = {}
    for s in ordered:
        if s.kind == "fold":
            if s.observer:
                observers.setdefault(s.observer, []).extend(s.toggles)
            else:
                (presence if s.stream == PRESENCE else claims).extend(s.toggles)
        elif s.kind in ("online", "offline"):
            presence.append((s.at, int(s.kind == "online")))
        elif s.kind == "media":
            claims.append((s.at, wit.claim_state(s.joined, s.video)))
        elif s.kind in ("observed", "unobserved"):
            state = wit.SEEN_NONE if s.kind == "unobserved" else wit.SEEN_ON if s.video else wit.SEEN_OFF
            observers.setdefault(s.observer, []).append((s.at, state))
    return sorted(presence), sorted(claims), {name: sorted(t) for name, t in observers.items()}


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


def _with_backfill(gap: Gap, backfilled: Intervals, rules: Rules, now: float) -> Gap:
    """The gap with the seconds backfilled segments cover, and whether they cover all of it."""
    if not backfilled:
        return gap
    span = iv.normalize([(gap.start, gap.end)])
    covered = iv.total(iv.intersect(span, backfilled), until=now)
    rest = iv.subtract(span, backfilled)
    full = gap.end is not None and all(e is not None and e - s < rules.backfill_slack_s for s, e in rest)
    return replace(gap, backfilled_s=round(covered, 3), backfilled=full)


def backfilled_spans(segments: Iterable[Signal]) -> Intervals:
    return iv.normalize((s.at, s.at + s.duration_s) for s in segments)


def evaluate(signals: Iterable[Signal], now: float, rules: Rules) -> Timeline:
    ordered = collect(signals)
    presence, claims, observers = _streams(ordered)
    present = wit.spans_where(presence, frozenset({1}))
    client_joined = wit.spans_where(claims, frozenset({wit.CLAIM_JOINED, wit.CLAIM_VIDEO}))
    video = wit.spans_where(claims, frozenset({wit.CLAIM_VIDEO}))
    hms_out = wit.hms_out(
        wit.PeerFact(s.at, s.kind, s.peer_id, s.session_id)
        for s in ordered
        if s.kind in ("join", "leave", "closed")
    )
    peer_spans: dict[str, iv.Interval] = {s.peer_id: (s.at, None) for s in ordered if s.kind == "join"}
    for s in ordered:
        if s.kind == "leave" and s.peer_id in peer_spans:
            peer_spans[s.peer_id] = (peer_spans[s.peer_id][0], s.at)
    in_room = iv.subtract(iv.union(client_joined, iv.normalize(peer_spans.values())), hms_out)
    finished = next((s.at for s in ordered if s.kind == "finished"), None)
    sitting: Intervals = ()
    if present:
        first = present[0][0]
        sitting = iv.normalize([(first, finished)])
    seen = iv.subtract(iv.intersect(video, present), hms_out)
    witnessed = _Video(present, client_joined, video, hms_out)
    gap_spans, next_check = _long_spans(iv.subtract(sitting, seen), rules, now)
    video_gaps = [Gap(VIDEO_GAP, _cause(start, witnessed), start, end) for start, end in gap_spans]
    disputes = iv.intersect(wit.disputed(seen, observers), sitting)
    dispute_spans, dispute_check = _long_spans(disputes, rules, now)
    video_gaps += [
        Gap(
            VIDEO_DISPUTED,
            "observers_see_no_video",
            start,
            end,
            observed=tuple(sorted(wit.observers_at(observers, start).items())),
        )
        for start, end in dispute_spans
    ]
    if dispute_check is not None:
        next_check = dispute_check if next_check is None else min(next_check, dispute_check)
    peers = _peers(ordered, video, rules, now)
    for p in peers:
        if p.status == "pending" and p.due_at is not None:
            next_check = p.due_at if next_check is None else min(next_check, p.due_at)
    recorded = iv.normalize((p.start, p.end) for p in peers if p.status == "recorded" and p.start is not None)
    segments = tuple(s for s in ordered if s.kind == "backfilled")
    backfilled = backfilled_spans(segments)
    gaps = tuple(
        sorted(
            (_with_backfill(g, backfilled, rules, now) for g in [*video_gaps, *_recording_gaps(peers)]),
            key=lambda g: (g.start, g.kind, g.peer_id),
        )
    )
    sitting_now = iv.contains(sitting, now)
    video_state: Tristate = "unknown" if not claims else ("on" if iv.contains(seen, now) else "off")
    failed_now = any(p.status == "failed" and (p.end is None or p.end >= now) for p in peers)
    recording_state: Tristate = "unknown"
    if claims:
        recording_state = "on" if sitting_now and video_state == "on" and not failed_now else "off"
    rooms = [s.room_id for s in ordered if s.kind in ("media", "fold") and s.room_id and not s.observer]
    room = rooms[-1] if rooms else None
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
        hms_out=hms_out,
        disputed=disputes,
        backfilled=backfilled,
        backfill_segments=segments,
    )
