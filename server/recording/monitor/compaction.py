"""Keep a candidate's signals bounded: fold its oldest toggles into the intervals they prove. Pure.

The page's `media.status` claims, the proctors' `media.observed` views and the candidate's presence
(online / offline, one pair per reconnect) are toggles that only matter through the intervals they
make. When a candidate holds more than `budget` of them, all but
the newest `keep` are folded, per stream, into one `fold` signal (witnesses.fold), which replaces
them and any earlier fold of the stream. 100ms's facts, `finished` and recordings are never folded:
each names a fact of its own and there are few of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from server.recording.monitor import witnesses as wit
from server.recording.monitor.timeline import PRESENCE, Signal, collect

TOGGLE_KINDS = frozenset({"media", "observed", "unobserved", "online", "offline"})


@dataclass(frozen=True, slots=True)
class Budget:
    budget: int = 256
    """Raw toggles a candidate may hold before the oldest are folded."""
    keep: int = 64
    """Raw toggles kept, the newest, after a fold."""
    min_run_s: float = 10.0
    """A state held for less than this inside a fold merges into the one before (the gap threshold)."""


@dataclass(frozen=True, slots=True)
class Compaction:
    remove: tuple[Signal, ...]
    add: tuple[Signal, ...]


def _toggle(signal: Signal) -> wit.Toggle:
    if signal.kind in ("online", "offline"):
        return signal.at, int(signal.kind == "online")
    if signal.kind == "media":
        return signal.at, wit.claim_state(signal.joined, signal.video)
    if signal.kind == "unobserved":
        return signal.at, wit.SEEN_NONE
    return signal.at, wit.SEEN_ON if signal.video else wit.SEEN_OFF


def _stream_of(signal: Signal) -> tuple[str, str]:
    if signal.kind in ("online", "offline"):
        return PRESENCE, ""
    return "", signal.observer if signal.kind != "media" else ""


def compact(signals: Iterable[Signal], budget: Budget) -> Compaction | None:
    """What to replace when the raw toggles are over budget; None when they are not."""
    ordered = collect(signals)
    raw = [s for s in ordered if s.kind in TOGGLE_KINDS]
    if len(raw) <= budget.budget:
        return None
    cutoff = raw[-budget.keep].at if budget.keep > 0 else float("inf")
    old = [s for s in raw if s.at < cutoff]
    if not old:
        return None  # the newest `keep` share one instant: nothing older to fold
    folds = [s for s in ordered if s.kind == "fold"]
    streams: dict[tuple[str, str], list[wit.Toggle]] = {}  # (stream, observer) -> toggles
    rooms: dict[tuple[str, str], str] = {}
    for f in folds:
        streams.setdefault((f.stream, f.observer), []).extend(f.toggles)
        rooms[(f.stream, f.observer)] = f.room_id
    for s in old:
        name = _stream_of(s)
        streams.setdefault(name, []).append(_toggle(s))
        if s.room_id:
            rooms[name] = s.room_id
    added = []
    for (stream, observer), toggles in sorted(streams.items()):
        kept = wit.fold(sorted(toggles), min_run_s=budget.min_run_s)
        if not kept:
            continue
        last = kept[-1][0]
        added.append(
            Signal(
                f"fold:{stream}:{observer}:{int(last * 1000)}",
                last,
                "fold",
                observer=observer,
                stream=stream,
                room_id=rooms.get((stream, observer), ""),
                toggles=kept,
            )
        )
    return Compaction(tuple(folds + old), tuple(added))
