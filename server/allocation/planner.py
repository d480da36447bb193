"""Who sits where and who watches which room: the allocation planner (pure).

State in, plan out: no I/O, no clock (`now` is part of the state), no randomness. The service
reads the event into an `EventState`, asks `plan` (a full pass) or `place_joins` (the fast path
for a batch of arrivals), carries the `Plan` out against the store and 100ms, and records the
result; `apply` is that same step as a pure function, so tests can run whole events.

Seats are sticky (docs/architecture.md, "Allocation"): moving a candidate forces a 100ms rejoin and splits
its recording, so a candidate seated in an open room never moves, whatever its presence; an
offline one keeps its seat to come back to, and only `finished` frees a seat (`releases`). The
one exception is a room that was closed under its candidates: present ones are seated anew.

Placement fills compactly: a returning candidate goes back to its old room while that room is
open and has space; the others go to the fullest watched room with space, then the fullest
unwatched occupied room, then warm (never used) rooms in creation order. Proctors are planned
by `planner_proctors.assign`: coverage, then balance within L, with hysteresis, and rotation
when proctors run short.

`rooms_to_create`, `unplaced` and `shortage` are standing reports: they stay the same on every
plan until the world changes (the service created the rooms, a proctor arrived). `is_empty` is
about changes only: `plan(apply(s, plan(s))).is_empty` holds for every state `s`.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from server.allocation.planner_proctors import Limits, Shortage, assign

__all__ = [
    "CandidateState",
    "Capacity",
    "EventState",
    "Plan",
    "ProctorState",
    "RoomState",
    "Shortage",
    "apply",
    "place_joins",
    "plan",
]

Presence = Literal["online", "reconnecting", "offline", "finished"]
PRESENT = frozenset({"online", "reconnecting"})  # a reconnecting user is still within its grace


@dataclass(frozen=True, slots=True)
class Capacity:
    """An event's knobs: N, M, L, the expected head count, and the pool and rotation policy."""

    room_size: int = 10  # N: candidates per room
    proctors_per_room: int = 1  # M
    proctor_load: int = 10  # L: candidates one proctor watches (one room always allowed)
    expected_candidates: int = 0
    spare_rooms: int = 1  # empty open rooms kept ready while candidates may still arrive
    rotation_s: float = 60.0  # in a shortage, a room changes hands at most this often

    def __post_init__(self) -> None:
        for name in ("room_size", "proctors_per_room", "proctor_load"):
            if getattr(self, name) < 1:
                raise ValueError(f"Capacity {name} must be at least 1, got {getattr(self, name)!r}")
        for name in ("expected_candidates", "spare_rooms"):
            if getattr(self, name) < 0:
                raise ValueError(f"Capacity {name} must not be negative, got {getattr(self, name)!r}")
        if not self.rotation_s > 0:  # 0 would swap rooms back and forth within one plan
            raise ValueError(f"Capacity rotation_s must be positive, got {self.rotation_s!r}")


@dataclass(frozen=True, slots=True)
class RoomState:
    """A room in creation order. `candidates` hold its seats; `proctors` are who watch it.

    The two times are what `apply` records for fair rotation: since when this occupied room has
    been unwatched / watched (None reads as `now`: the state just began)."""

    room_id: str
    open: bool = True
    candidates: frozenset[str] = frozenset()
    proctors: frozenset[str] = frozenset()
    unwatched_since: float | None = None
    watched_since: float | None = None


@dataclass(frozen=True, slots=True)
class CandidateState:
    """`room_id` is the room the candidate sits in, or last sat in (finished, or room closed)."""

    candidate_id: str
    presence: Presence = "online"
    room_id: str | None = None


@dataclass(frozen=True, slots=True)
class ProctorState:
    """A proctor's rooms are the rooms that list it (one source of truth, no copy to disagree)."""

    proctor_id: str
    presence: Presence = "online"


@dataclass(frozen=True, slots=True)
class EventState:
    capacity: Capacity
    rooms: tuple[RoomState, ...]
    candidates: Mapping[str, CandidateState]
    proctors: Mapping[str, ProctorState]
    now: float

    @classmethod
    def build(
        cls,
        capacity: Capacity,
        rooms: Iterable[RoomState] = (),
        candidates: Iterable[CandidateState] = (),
        proctors: Iterable[ProctorState] = (),
        now: float = 0.0,
    ) -> EventState:
        return cls(
            capacity,
            tuple(rooms),
            {c.candidate_id: c for c in candidates},
            {p.proctor_id: p for p in proctors},
            now,
        )


@dataclass(frozen=True, slots=True)
class Plan:
    """What to change, and what to report. `proctor_rooms` lists only proctors whose rooms change
    (an absent one gets the empty set); `releases` are the seats of finished candidates."""

    placements: tuple[tuple[str, str], ...] = ()  # (candidate_id, room_id)
    releases: tuple[tuple[str, str], ...] = ()  # (candidate_id, room_id)
    proctor_rooms: Mapping[str, frozenset[str]] = field(default_factory=dict)
    rooms_to_create: int = 0
    rooms_to_disable: tuple[str, ...] = ()
    unplaced: tuple[str, ...] = ()
    rooms_needed: int = 0  # rooms the unplaced need; included in rooms_to_create
    shortage: Shortage | None = None

    @property
    def is_empty(self) -> bool:
        """Nothing to change (the standing reports may still ask for rooms or proctors)."""
        return not (self.placements or self.releases or self.proctor_rooms or self.rooms_to_disable)


def _present(ids: Iterable[str], proctors: Mapping[str, ProctorState]) -> bool:
    return any((p := proctors.get(pid)) is not None and p.presence in PRESENT for pid in ids)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _want_rooms(cap: Capacity, known: int, free: int, going: bool, unplaced: int, warm: int) -> int:
    """Warm pool: rooms for the unplaced and the candidates still expected, beyond the free seats
    of occupied rooms, plus a spare while candidates may still come; minus the warm rooms there."""
    arrivals = max(0, cap.expected_candidates - known)
    want = _ceil_div(max(0, arrivals + unplaced - free), cap.room_size)
    return max(0, want + (cap.spare_rooms if going else 0) - warm)


class _Census:
    """One pass over the state: seats per room, who needs a seat, which rooms were ever used."""

    def __init__(self, state: EventState) -> None:
        self.state = state
        rooms, cands = state.rooms, state.candidates
        self.index = {r.room_id: i for i, r in enumerate(rooms)}
        self.occ = [0] * len(rooms)  # unfinished seats in open rooms
        self.used = [bool(r.candidates) for r in rooms]
        self.named = [False] * len(rooms)  # an unfinished candidate names this room as its own
        self.releases: list[tuple[str, str]] = []
        seated: set[str] = set()
        for i, room in enumerate(rooms):
            for cid in room.candidates:
                c = cands.get(cid)
                if c is not None and c.presence == "finished":
                    self.releases.append((cid, room.room_id))
                elif room.open:
                    self.occ[i] += 1
                    seated.add(cid)
        self.returning: list[tuple[str, int]] = []
        self.newcomers: list[str] = []
        self.unfinished = 0
        for cid, c in cands.items():
            at = self.index.get(c.room_id) if c.room_id is not None else None
            if at is not None:
                self.used[at] = True
            if c.presence == "finished":
                continue
            self.unfinished += 1
            if at is not None:
                self.named[at] = True
            if c.presence in PRESENT and cid not in seated:
                if at is not None and rooms[at].open:
                    self.returning.append((cid, at))
                else:
                    self.newcomers.append(cid)

    def place(self, watched: list[bool]) -> tuple[list[tuple[str, str]], list[str]]:
        """Returning candidates to their old rooms, then everyone else compactly."""
        rooms, n = self.state.rooms, self.state.capacity.room_size
        placed: list[tuple[str, str]] = []
        overflow: list[str] = []
        for cid, i in self.returning:
            if self.occ[i] < n:
                self.occ[i] += 1
                placed.append((cid, rooms[i].room_id))
            else:
                overflow.append(cid)
        partial = [i for i, r in enumerate(rooms) if r.open and 0 < self.occ[i] < n]
        partial.sort(key=lambda i: (not watched[i], -self.occ[i], i))
        warm = [i for i, r in enumerate(rooms) if r.open and not self.used[i]]
        targets, k = partial + warm, 0
        unplaced: list[str] = []
        for cid in overflow + self.newcomers:
            while k < len(targets) and self.occ[targets[k]] >= n:
                k += 1
            if k == len(targets):
                unplaced.append(cid)
                continue
            self.occ[targets[k]] += 1
            placed.append((cid, rooms[targets[k]].room_id))
        return placed, unplaced

    def to_disable(self) -> list[int]:
        """Open rooms emptied by finishes: used, no unfinished candidate sits in or names them."""
        rooms = self.state.rooms
        return [
            i
            for i, r in enumerate(rooms)
            if r.open and self.used[i] and not self.occ[i] and not self.named[i]
        ]

    def rooms_to_create(self, unplaced: int) -> int:
        cap, rooms = self.state.capacity, self.state.rooms
        n, known = cap.room_size, len(self.state.candidates)
        free = sum(n - o for i, o in enumerate(self.occ) if rooms[i].open and 0 < o < n)
        warm = sum(1 for i, r in enumerate(rooms) if r.open and not self.occ[i] and not self.used[i])
        going = known == 0 or self.unfinished > 0 or cap.expected_candidates > known
        return _want_rooms(cap, known, free, going, unplaced, warm)


def _times(room: RoomState, watched_before: bool, now: float) -> tuple[float, float]:
    """(unwatched since, watched since) for an occupied room, as `apply` will record them."""
    unwatched = room.unwatched_since if not watched_before and room.unwatched_since is not None else now
    watched = room.watched_since if watched_before and room.watched_since is not None else now
    return unwatched, watched


def _plan_proctors(
    state: EventState, occ: list[int], watched_before: list[bool]
) -> tuple[dict[str, frozenset[str]], Shortage | None]:
    cap, rooms = state.capacity, state.rooms
    present = [pid for pid, p in state.proctors.items() if p.presence in PRESENT]
    is_present = set(present)
    weights = [occ[i] if r.open else 0 for i, r in enumerate(rooms)]
    current = [(p, i) for i, r in enumerate(rooms) if weights[i] for p in r.proctors if p in is_present]
    times = [_times(r, watched_before[i], state.now) for i, r in enumerate(rooms)]
    limits = Limits(cap.room_size, cap.proctors_per_room, cap.proctor_load, cap.rotation_s)
    held, unwatched = assign(
        weights, current, present, limits, [t[0] for t in times], [t[1] for t in times], state.now
    )
    before: dict[str, set[str]] = {}
    for r in rooms:
        for p in r.proctors:
            before.setdefault(p, set()).add(r.room_id)
    changes: dict[str, frozenset[str]] = {
        p: frozenset() for p, had in before.items() if p not in is_present and had
    }
    for p in present:
        now_held = frozenset(rooms[i].room_id for i in held[p])
        if now_held != before.get(p, set()):
            changes[p] = now_held
    shortage = Shortage(len(present), sum(1 for w in weights if w), unwatched) if unwatched else None
    return changes, shortage


def plan(state: EventState) -> Plan:
    """The full pass: release, place, disable, watch, and size the warm pool."""
    census = _Census(state)
    watched = [_present(r.proctors, state.proctors) for r in state.rooms]
    placements, unplaced = census.place(watched)
    disable = census.to_disable()
    proctor_rooms, shortage = _plan_proctors(state, census.occ, watched)
    needed = _ceil_div(len(unplaced), state.capacity.room_size)
    return Plan(
        placements=tuple(placements),
        releases=tuple(census.releases),
        proctor_rooms=proctor_rooms,
        rooms_to_create=census.rooms_to_create(len(unplaced)),
        rooms_to_disable=tuple(state.rooms[i].room_id for i in disable),
        unplaced=tuple(unplaced),
        rooms_needed=needed,
        shortage=shortage,
    )


def place_joins(state: EventState, candidate_ids: Iterable[str]) -> Plan:
    """Seat a batch of arrivals without a full pass: O(rooms), not O(candidates).

    Same placement rules as `plan`, with seats counted as listed (a finished candidate not yet
    released still holds one) and empty open rooms taken as warm. Rooms this batch opens get the
    lightest proctor that fits; balance, rotation and releases wait for the next `plan`. A
    `shortage` is reported only when a room opened here cannot be watched."""
    cap, rooms, n = state.capacity, state.rooms, state.capacity.room_size
    joiners = _joiners(state, candidate_ids)
    olds = {c.room_id for c in joiners}
    occ: dict[int, int] = {}
    partial: list[int] = []
    warm: list[int] = []
    by_id: dict[str, int] = {}
    for i, room in enumerate(rooms):
        if not room.open:
            continue
        seats = len(room.candidates)
        if room.room_id in olds:
            by_id[room.room_id] = i
            occ[i] = seats
        if seats < n:
            (partial if seats else warm).append(i)
            occ[i] = seats
    placed: list[tuple[str, str]] = []
    rest: list[str] = []
    opened: list[int] = []  # rooms this batch takes from empty to occupied: they need a proctor
    for c in joiners:
        old = by_id.get(c.room_id) if c.room_id is not None else None
        if old is not None and c.candidate_id in rooms[old].candidates:
            continue  # already seated in an open room: nothing to do
        if old is not None and occ[old] < n:
            if occ[old] == 0:
                opened.append(old)
            occ[old] += 1
            placed.append((c.candidate_id, rooms[old].room_id))
        else:
            rest.append(c.candidate_id)
    partial.sort(key=lambda i: (not _present(rooms[i].proctors, state.proctors), -occ[i], i))
    targets, k = partial + warm, 0
    unplaced: list[str] = []
    for cid in rest:
        while k < len(targets) and occ[targets[k]] >= n:
            k += 1
        if k == len(targets):
            unplaced.append(cid)
            continue
        i = targets[k]
        if occ[i] == 0:
            opened.append(i)
        occ[i] += 1
        placed.append((cid, rooms[i].room_id))
    proctor_rooms: dict[str, frozenset[str]] = {}
    shortage: Shortage | None = None
    if opened:
        proctor_rooms, shortage = _watch_opened(state, opened, occ)
    needed = _ceil_div(len(unplaced), n)
    free = sum(n - occ[i] for i in partial + opened if occ[i] < n)
    left_warm = len(warm) - len(opened)
    return Plan(
        placements=tuple(placed),
        proctor_rooms=proctor_rooms,
        rooms_to_create=_want_rooms(cap, len(state.candidates), free, True, len(unplaced), left_warm),
        unplaced=tuple(unplaced),
        rooms_needed=needed,
        shortage=shortage,
    )


def _joiners(state: EventState, candidate_ids: Iterable[str]) -> list[CandidateState]:
    """Known, present, each once: an offline or finished candidate is not placed."""
    seen: set[str] = set()
    out = []
    for cid in candidate_ids:
        c = state.candidates.get(cid)
        if c is not None and cid not in seen and c.presence in PRESENT:
            seen.add(cid)
            out.append(c)
    return out


def _watch_opened(
    state: EventState, opened: list[int], occ: dict[int, int]
) -> tuple[dict[str, frozenset[str]], Shortage | None]:
    """Give each room the batch opened the lightest present proctor within L (or with no room).

    One pass over the rooms for the loads; a chosen proctor's own rooms are looked up after."""
    rooms, limit = state.rooms, state.capacity.proctor_load
    present = [pid for pid, p in state.proctors.items() if p.presence in PRESENT]
    load = dict.fromkeys(present, 0)
    occupied = unwatched = 0
    for room in rooms:
        busy = room.open and bool(room.candidates)
        seen = False
        weight = len(room.candidates) if room.open else 0
        for p in room.proctors:
            if p in load:
                load[p] += weight
                seen = True
        occupied += busy
        unwatched += busy and not seen
    heap = [(load[p], k, p) for k, p in enumerate(present)]
    heapq.heapify(heap)
    changes: dict[str, frozenset[str]] = {}
    for i in opened:
        occupied += 1
        if not heap or (heap[0][0] and heap[0][0] + occ[i] > limit):
            unwatched += 1
            continue
        lp, k, p = heap[0]
        had = changes.get(p) or frozenset(r.room_id for r in rooms if p in r.proctors)
        changes[p] = had | {rooms[i].room_id}
        heapq.heapreplace(heap, (lp + occ[i], k, p))
    shortage = Shortage(len(present), occupied, unwatched) if unwatched else None
    return changes, shortage


def apply(state: EventState, plan: Plan) -> EventState:
    """The state after carrying `plan` out (what the service records), with rotation times."""
    rooms, cands = state.rooms, dict(state.candidates)
    index = {r.room_id: i for i, r in enumerate(rooms)}
    seats = [set(r.candidates) for r in rooms]
    watchers = [set(r.proctors) for r in rooms]
    for cid, rid in plan.releases:
        seats[index[rid]].discard(cid)
    for cid, rid in plan.placements:
        c = cands[cid]
        if c.room_id is not None and c.room_id != rid and c.room_id in index:
            seats[index[c.room_id]].discard(cid)
        seats[index[rid]].add(cid)
        cands[cid] = replace(c, room_id=rid)
    held: dict[str, list[int]] = {}
    for i, w in enumerate(watchers):
        for p in w:
            held.setdefault(p, []).append(i)
    for p, new in plan.proctor_rooms.items():
        for i in held.get(p, ()):
            watchers[i].discard(p)
        for rid in new:
            watchers[index[rid]].add(p)
    disabled = set(plan.rooms_to_disable)
    after = []
    for i, room in enumerate(rooms):
        is_open = room.open and room.room_id not in disabled
        occupied = is_open and any(
            (seated := cands.get(cid)) is None or seated.presence != "finished" for cid in seats[i]
        )
        times: tuple[float | None, float | None] = (None, None)
        if occupied:
            unwatched, watched = _times(room, _present(room.proctors, state.proctors), state.now)
            times = (None, watched) if _present(watchers[i], state.proctors) else (unwatched, None)
        after.append(
            replace(
                room,
                open=is_open,
                candidates=frozenset(seats[i]),
                proctors=frozenset(watchers[i]),
                unwatched_since=times[0],
                watched_since=times[1],
            )
        )
    return replace(state, rooms=tuple(after), candidates=cands)
