"""What a simulated candidate page holds of its own camera, and which of it answers the hub. Pure.

The page records from the moment it opens (before it reaches the hub, as the real page starts its
camera first) until it finished (after it left 100ms), also while its network is gone: the
recorder is local, so a candidate who lost its network holds the time it was away, as the real page
does. Time with the camera off is not recorded (the real recorder has no track then). Each recorded
span is cut into back-to-back segments of `segment_ms` from the span's start, so a segment's times
never move once it is cut; the span still being recorded has one segment in progress.

The hub's messages (extension E15) are kept as the page keeps them: the latest `backfill.request` of
an id replaces the earlier one, `backfill.cancel` (or a `409 request_closed`) removes it,
`backfill.release {until}` only grows. All times are epoch milliseconds; intervals are half-open.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

Span = tuple[int, int | None]
"""[start, end) of recording; end None while it goes on."""
Window = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Piece:
    """One segment: its number, its times, and whether it is still being recorded."""

    seq: int
    start_ms: int
    end_ms: int
    complete: bool = True


def pieces(spans: Sequence[Span], segment_ms: int, now_ms: int) -> list[Piece]:
    """Every segment of the recorded spans at `now_ms`, numbered in order (the one in progress last,
    ending at `now_ms`, with complete False)."""
    if segment_ms <= 0:
        raise ValueError(f"segment_ms must be positive, got {segment_ms}")
    out: list[Piece] = []
    for start, end in sorted(spans, key=lambda s: s[0]):
        stop = now_ms if end is None else min(end, now_ms) if end > now_ms else end
        at = start
        while at < stop:
            cut = at + segment_ms
            if cut <= stop:
                out.append(Piece(len(out), at, cut))
            elif end is not None and end <= now_ms:
                out.append(Piece(len(out), at, end))
            else:
                out.append(Piece(len(out), at, stop, complete=False))
            at = cut
    return out


def overlaps(piece: Piece, window: Window) -> bool:
    return piece.end_ms > window[0] and piece.start_ms < window[1]


@dataclass(frozen=True, slots=True)
class Work:
    """What to upload now (request, segment), oldest first; and when a segment an open request needs
    is recorded in full (None: nothing is being waited for)."""

    send: tuple[tuple[str, Piece], ...]
    wait_until_ms: int | None


def work(held: Sequence[Piece], requests: Mapping[str, Window], done: Iterable[tuple[str, int]]) -> Work:
    """The uploads open requests still need: every held segment that overlaps a request's window and
    is not archived for that request yet. A segment still recorded is waited for, not sent."""
    finished = set(done)
    send: list[tuple[str, Piece]] = []
    wait: int | None = None
    for rid, window in sorted(requests.items(), key=lambda r: (r[1][0], r[0])):
        for piece in held:
            if not overlaps(piece, window) or (rid, piece.seq) in finished:
                continue
            if piece.complete:
                send.append((rid, piece))
            else:
                wait = piece.end_ms if wait is None else min(wait, piece.end_ms)
    send.sort(key=lambda w: (w[1].start_ms, w[0]))
    return Work(tuple(send), wait)


def total_ms(spans: Iterable[Window]) -> int:
    return sum(max(0, end - start) for start, end in spans)


def released_all(held: Sequence[Piece], requests: Mapping[str, Window], until_ms: int | None) -> bool:
    """The page may delete everything it holds: each segment ends at or before the release point and
    no open request overlaps it (so a finished page may close)."""
    if requests:
        return False
    return not held or (until_ms is not None and all(p.end_ms <= until_ms and p.complete for p in held))
