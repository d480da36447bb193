"""Who says the candidate's video is there: the candidate's page, 100ms and the proctors' pages. Pure.

No single witness is believed alone:
- the candidate's page claims it is in the room with its camera on (`media.status`);
- 100ms says when each of the candidate's peers joined and left, and when a session closed: after a
  leave (or a close) the candidate is out of the room until 100ms sees a new join of the same user,
  whatever the page says (`hms_out`);
- a proctor's page sees whether the candidate's video track is published and live
  (`media.observed`): where the page claims video and every proctor with an opinion sees none, the
  two disagree (`disputed`).

Each witness's word is a stream of toggles: `(at, state)`, a state held until the next toggle of
the same stream. Old toggles are folded (`fold`) into a compact list that keeps the intervals they
prove, so a long exam with a flapping camera stays small to keep and quick to evaluate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from server.recording.monitor import intervals as iv
from server.recording.monitor.intervals import Intervals

Toggle = tuple[float, int]
"""(when, state). States of a page's claim: CLAIM_*; of an observer: SEEN_*."""

CLAIM_OUT, CLAIM_JOINED, CLAIM_VIDEO = 0, 1, 2
SEEN_NONE, SEEN_OFF, SEEN_ON = -1, 0, 1
"""SEEN_NONE: the observer no longer has an opinion (it stopped watching the candidate)."""


def claim_state(joined: bool, video: bool) -> int:
    return CLAIM_VIDEO if joined and video else CLAIM_JOINED if joined else CLAIM_OUT


def spans_where(toggles: Iterable[Toggle], states: frozenset[int]) -> Intervals:
    """Where the stream's state is one of `states`; toggles must be in time order."""
    return iv.from_toggles((at, state in states) for at, state in toggles)


# ---------------------------------------------------------------- 100ms


@dataclass(frozen=True, slots=True)
class PeerFact:
    """What 100ms said about one of the candidate's peers, or about a session (`peer_id` empty)."""

    at: float
    kind: str  # "join", "leave" or "closed"
    peer_id: str = ""
    session_id: str = ""


_FACT_ORDER = {"leave": 0, "closed": 1, "join": 2}
"""At one instant a leave or close comes before a join: a rejoin at the moment of leaving is in."""


def hms_out(facts: Iterable[PeerFact]) -> Intervals:
    """Where 100ms says the candidate is not in the room: from a leave (or its session's close) that
    left none of its peers joined, until the next join. Before 100ms said anything, nothing is out."""
    joined: dict[str, str] = {}  # peer -> session, of peers 100ms saw join and not yet leave
    ended: set[str] = set()
    closed: set[str] = set()
    out: list[iv.Interval] = []
    since: float | None = None
    for fact in sorted(facts, key=lambda f: (f.at, _FACT_ORDER.get(f.kind, 3), f.peer_id, f.session_id)):
        if fact.kind == "join":
            if fact.peer_id in ended or fact.session_id in closed:
                continue  # a join whose leave (or session's close) 100ms already said
            joined[fact.peer_id] = fact.session_id
            if since is not None:
                out.append((since, fact.at))
                since = None
            continue
        if fact.kind == "leave":
            joined.pop(fact.peer_id, None)
            ended.add(fact.peer_id)
        elif fact.kind == "closed":
            closed.add(fact.session_id)
            for peer_id in [p for p, s in joined.items() if s == fact.session_id]:
                del joined[peer_id]
                ended.add(peer_id)
        else:
            continue
        if not joined and since is None:
            since = fact.at
    if since is not None:
        out.append((since, None))
    return iv.normalize(out)


# ---------------------------------------------------------------- proctors


def disputed(claimed: Intervals, observers: Mapping[str, Sequence[Toggle]]) -> Intervals:
    """Where the page's claim of video (`claimed`) meets only observers who see none: at least one
    observer sees no video and none sees it. The other way round (the page says its camera is off,
    a proctor sees video) is no dispute: the page's own word already opened a gap."""
    off = iv.union(*(spans_where(t, frozenset({SEEN_OFF})) for t in observers.values()))
    on = iv.union(*(spans_where(t, frozenset({SEEN_ON})) for t in observers.values()))
    return iv.subtract(iv.intersect(claimed, off), on)


def observers_at(observers: Mapping[str, Sequence[Toggle]], at: float) -> dict[str, bool]:
    """Each observer's opinion at `at` (True: sees video), observers without one left out."""
    seen: dict[str, bool] = {}
    for name, toggles in observers.items():
        state = SEEN_NONE
        for when, value in toggles:
            if when > at:
                break
            state = value
        if state != SEEN_NONE:
            seen[name] = state == SEEN_ON
    return seen


# ---------------------------------------------------------------- folding


def fold(toggles: Sequence[Toggle], *, min_run_s: float) -> tuple[Toggle, ...]:
    """A compact equivalent of a stream's old toggles (in time order): repeats dropped, and a state
    held for less than `min_run_s` before the next toggle merged into the state before it, so the
    folded stream has at most one toggle per `min_run_s` (plus its first and last). Every run of at
    least `min_run_s` keeps its state over its whole span (a run shorter than the gap threshold could
    never be a gap by itself). The last toggle is kept: how long it holds is not known yet."""
    changes = [t for i, t in enumerate(toggles) if i == 0 or toggles[i - 1][1] != t[1]]
    out: list[Toggle] = []
    for index, (at, state) in enumerate(changes):
        short = index + 1 < len(changes) and changes[index + 1][0] - at < min_run_s
        if out and (short or out[-1][1] == state):
            continue
        out.append((at, state))
    return tuple(out)
