"""Half-open time intervals [start, end) as sorted, disjoint tuples; `end` None means "still going".

Pure functions over plain tuples so the timeline can combine presence, room, video and recording
spans the same way whatever order their signals arrived in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

Interval = tuple[float, float | None]
Intervals = tuple[Interval, ...]

INF = math.inf


def _end(value: float | None) -> float:
    return INF if value is None else value


def _out(value: float) -> float | None:
    return None if value == INF else value


def normalize(spans: Iterable[Interval]) -> Intervals:
    """Sorted, merged (touching spans join), empty ones dropped."""
    ordered = sorted(((s, _end(e)) for s, e in spans if _end(e) > s), key=lambda p: p[0])
    merged: list[list[float]] = []
    for start, end in ordered:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return tuple((s, _out(e)) for s, e in merged)


def from_toggles(toggles: Iterable[tuple[float, bool]]) -> Intervals:
    """Spans where the last toggle said on; toggles must be in time order."""
    spans: list[Interval] = []
    since: float | None = None
    for at, on in toggles:
        if on and since is None:
            since = at
        elif not on and since is not None:
            spans.append((since, at))
            since = None
    if since is not None:
        spans.append((since, None))
    return normalize(spans)


def union(*sets: Intervals) -> Intervals:
    return normalize(span for spans in sets for span in spans)


def intersect(a: Intervals, b: Intervals) -> Intervals:
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start = max(a[i][0], b[j][0])
        end = min(_end(a[i][1]), _end(b[j][1]))
        if end > start:
            out.append((start, _out(end)))
        if _end(a[i][1]) < _end(b[j][1]):
            i += 1
        else:
            j += 1
    return tuple(out)


def subtract(a: Intervals, b: Intervals) -> Intervals:
    """The parts of `a` not covered by `b`."""
    out: list[Interval] = []
    for start, end_raw in a:
        cursor, end = start, _end(end_raw)
        for b_start, b_end_raw in b:
            b_end = _end(b_end_raw)
            if b_end <= cursor or b_start >= end:
                continue
            if b_start > cursor:
                out.append((cursor, b_start))
            cursor = max(cursor, b_end)
            if cursor >= end:
                break
        if cursor < end:
            out.append((cursor, _out(end)))
    return tuple(out)


def epoch_ms(at: float | None) -> int | None:
    """Epoch seconds (Python side) to the wire's epoch milliseconds."""
    return None if at is None else int(at * 1000)


def contains(spans: Intervals, at: float) -> bool:
    return any(start <= at < _end(end) for start, end in spans)


def overlaps(spans: Intervals, start: float, end: float | None) -> bool:
    return bool(intersect(spans, normalize([(start, end)])))


def total(spans: Intervals, *, until: float) -> float:
    """Seconds covered, counting a running span up to `until`."""
    return sum(max(0.0, min(_end(e), until) - s) for s, e in spans if s < until)
