"""Which of a candidate's time to ask its page for, and what the page may delete. Pure.

Uncovered time is sitting time (up to now) that no 100ms recording covers and no recording still
undecided (a pending peer's span) may yet cover: a failed or missing recording, a peer that left
100ms while the page still had video, a hole between recordings. Each uncovered span of at least
`min_s` is one request, named by its start (`bf-{start ms}`), so every evaluation on any node names
it the same. A request is open while its window, less the backfilled segments, still has a hole of
`slack_s` or more; satisfied otherwise; cancelled when its span is no longer uncovered (a late
recording). A span still going on is asked for up to now, and asked again with a later `to` once it
grew by `extend_s` (the latest request of an id wins). The page may delete its segments that end
before the release point: the earliest time still undecided (a pending recording, a span still
going on), never moving back.

The page says from when it still holds its recording (`media.status.local.from`): a request never
asks for time before that. A span that reaches past it is asked for from there on (its id stays
that of the span's start); a span wholly before it is `lost` (not asked for, an open one is
withdrawn) unless backfill covers it already; the part not asked for stays a gap with its cause.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from server.recording.monitor import intervals as iv
from server.recording.monitor.intervals import Intervals
from server.recording.monitor.timeline import Timeline

State = Literal["open", "satisfied", "cancelled", "lost"]
Cause = tuple[float, float | None, str]
"""A span of the timeline and why it was not recorded (a gap's cause)."""

NOT_RECORDED = "not_recorded"


@dataclass(frozen=True, slots=True)
class Rules:
    min_s: float = 5.0
    """Uncovered spans shorter than this are not asked for (a rejoin's second, a recording's start)."""
    slack_s: float = 1.0
    """Holes shorter than this between backfilled segments do not count (a recorder's restart)."""
    extend_s: float = 30.0
    """A span still going on is asked for again when it grew by this much (one segment)."""
    release_step_s: float = 10.0
    """The release point is sent again only when it moved by at least this much."""


@dataclass(frozen=True, slots=True)
class Request:
    request_id: str
    start: float
    end: float
    state: State
    cause: str = NOT_RECORDED
    ongoing: bool = False
    """The span still went on when `end` was set (so `end` will move)."""


@dataclass(frozen=True, slots=True)
class Inputs:
    sitting: Intervals
    recorded: Intervals
    pending: Intervals
    """Spans of peers whose recording is still undecided."""
    backfilled: Intervals
    now: float
    causes: tuple[Cause, ...] = ()
    local_from: float | None = None
    """The oldest time the page still holds (its `local.from`); None when it did not say."""


@dataclass(frozen=True, slots=True)
class Span:
    start: float
    end: float | None
    """None while it goes on."""
    cause: str


@dataclass(frozen=True)
class Plan:
    requests: dict[str, Request]
    """Every request as it is now (to store)."""
    send: tuple[Request, ...]
    """Requests to send (`backfill.request` if open, `backfill.cancel` otherwise)."""
    release: float | None
    """The release point to send, or None when it did not move enough."""
    released: float | None
    """The release point as it is now (to store)."""
    next_check: float | None


def request_id(start: float) -> str:
    return f"bf-{int(start * 1000)}"


def _cause_of(start: float, end: float | None, causes: Iterable[Cause]) -> str:
    """The first cause (they come ranked) whose span overlaps [start, end)."""
    for c_start, c_end, cause in causes:
        if iv.overlaps(iv.normalize([(c_start, c_end)]), start, end):
            return cause
    return NOT_RECORDED


def uncovered(inputs: Inputs) -> list[Span]:
    """Sitting time up to now that no recording covers or may still cover."""
    now = inputs.now
    sat = iv.intersect(inputs.sitting, ((float("-inf"), now),))
    holes = iv.subtract(iv.subtract(sat, inputs.recorded), inputs.pending)
    out = []
    for start, end in holes:
        going_on = end is None or end >= now
        out.append(Span(start, None if going_on else end, _cause_of(start, end, inputs.causes)))
    return out


def holes(start: float, end: float, backfilled: Intervals, slack_s: float) -> Intervals:
    """Parts of [start, end) no backfilled segment covers, of at least `slack_s`."""
    rest = iv.subtract(((start, end),), backfilled)
    return tuple((s, e) for s, e in rest if e is not None and e - s >= slack_s)


def _window_end(span: Span, held: Request | None, now: float, rules: Rules) -> tuple[float, bool]:
    if span.end is not None:
        return span.end, False
    if held is not None and held.ongoing and held.state != "cancelled" and now - held.end < rules.extend_s:
        return held.end, True
    return now, True


def _window_start(start: float, end: float, inputs: Inputs, rules: Rules) -> tuple[float, State]:
    """Where the request of the span [start, end) begins, and its state: the span is asked for only
    from the oldest time the page still holds; lost when the page holds none of it (and backfill
    did not cover it before)."""
    if not holes(start, end, inputs.backfilled, rules.slack_s):
        return start, "satisfied"
    held_from = start if inputs.local_from is None else max(start, inputs.local_from)
    if held_from >= end:
        return start, "lost"
    return held_from, "open" if holes(held_from, end, inputs.backfilled, rules.slack_s) else "satisfied"


def release_point(inputs: Inputs, spans: list[Span]) -> float:
    """The earliest time still undecided: a pending recording's start, a span going on, or now."""
    points = [inputs.now]
    points += [s for s, _ in inputs.pending]
    points += [s.start for s in spans if s.end is None]
    return min(points)


def plan(inputs: Inputs, stored: dict[str, Request], released: float | None, rules: Rules) -> Plan:
    now = inputs.now
    spans = uncovered(inputs)
    wanted: dict[str, Request] = {}
    next_check: float | None = None

    def later(at: float) -> None:
        nonlocal next_check
        next_check = at if next_check is None else min(next_check, at)

    for span in spans:
        length = (now if span.end is None else span.end) - span.start
        if length < rules.min_s:
            if span.end is None:
                later(span.start + rules.min_s)
            continue
        rid = request_id(span.start)
        held = stored.get(rid)
        end, ongoing = _window_end(span, held, now, rules)
        if ongoing:
            later(end + rules.extend_s)
        start, state = _window_start(span.start, end, inputs, rules)
        wanted[rid] = Request(rid, start, end, state, span.cause, ongoing)
    result = dict(wanted)
    send: list[Request] = []
    for rid, request in wanted.items():
        held = stored.get(rid)
        if held is None:
            changed = request.state == "open"
        else:
            moved = (held.state, held.start, held.end) != (request.state, request.start, request.end)
            changed = moved and "open" in (request.state, held.state)
        if changed:
            send.append(request)
    for rid, held in stored.items():
        if rid not in wanted:
            gone = replace(held, state="cancelled", ongoing=False)
            result[rid] = gone
            if held.state == "open":
                send.append(gone)
    point = release_point(inputs, spans)
    release = None
    new_released = released
    if released is None or point >= released + max(rules.release_step_s, 1e-9):
        release, new_released = point, point
    return Plan(
        result, tuple(sorted(send, key=lambda r: (r.start, r.request_id))), release, new_released, next_check
    )


def open_requests(requests: Iterable[Request]) -> list[Request]:
    return sorted((r for r in requests if r.state == "open"), key=lambda r: (r.start, r.request_id))


def inputs_of(timeline: Timeline, now: float, local_from: float | None = None) -> Inputs:
    """What the plan needs of a candidate's timeline: recording gaps' causes first, video gaps' after."""
    pending = iv.normalize(
        (p.start, p.end) for p in timeline.peers if p.status == "pending" and p.start is not None
    )
    ranked = sorted(timeline.gaps, key=lambda g: (g.kind.startswith("video"), g.start))
    return Inputs(
        sitting=timeline.sitting,
        recorded=timeline.recorded,
        pending=pending,
        backfilled=timeline.backfilled,
        now=now,
        causes=tuple((g.start, g.end, g.cause) for g in ranked),
        local_from=local_from,
    )
