"""The allocation planner: properties over generated states and whole events, plus examples.

What is guaranteed, precisely (and asserted by `check_plan` after every plan):

- seats: a placement never fills a room beyond N; no candidate is in two rooms; a candidate
  seated in an open room stays there (whatever its presence) until it finishes; finished
  candidates hold no seat; every present candidate is seated unless it is `unplaced`, and then
  no open room it could take has a free seat; a returning candidate whose old room is open and
  has space goes back to it;
- rooms: the rooms disabled are exactly the open rooms that were used, hold no unfinished
  candidate and are named by none; creating `rooms_to_create` rooms seats every unplaced
  candidate, asks for no more, and leaves at least `spare_rooms` warm rooms while candidates
  may still come;
- proctors (full plan): only present proctors, only in open occupied rooms, at most M per room;
  every occupied room is watched when proctors >= occupied rooms (more generally when
  proctors * max(1, L // N) >= occupied rooms and no room holds more than N); a proctor with two
  or more rooms never exceeds L; for two proctors whose loads differ by more than N (one room),
  no room of the heavier could go to the lighter (it is there already, or it would push a busy
  lighter proctor over L, or it is at least the gap); a room has a second proctor only if every
  room has a first; `shortage` is set exactly when an occupied room is left unwatched, with the
  counts of the resulting state;
- fixed point: applying a plan twice is applying it once, and planning the applied state again
  yields an empty plan with the same standing reports.

Also: creating the rooms asked for leaves nothing more to ask; a proctor within its grace moves
nobody, and one back from absence only takes rooms that others give up; in a shortage every
room waits at most one round-robin turn and keeps its proctor at least `rotation_s`;
`place_joins` seats only the joiner, by the same rules, and gives a room it opens a proctor
within L. These checks run on generated states and after every step of generated events.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.allocation.planner import (
    PRESENT,
    CandidateState,
    Capacity,
    EventState,
    Plan,
    Presence,
    ProctorState,
    RoomState,
    Shortage,
    apply,
    place_joins,
    plan,
)

PRESENCES: tuple[Presence, ...] = ("online", "reconnecting", "offline", "finished")
NOW = 1000.0
TIMES = st.none() | st.sampled_from([0.0, 500.0, 939.0, 940.0, NOW])

# ----------------------------------------------------------------- reading a state


def unfinished(state: EventState, room: RoomState) -> int:
    return sum(1 for c in room.candidates if state.candidates[c].presence != "finished")


def present(state: EventState) -> list[str]:
    return [p for p, s in state.proctors.items() if s.presence in PRESENT]


def watched(state: EventState, room: RoomState) -> bool:
    return any(p in state.proctors and state.proctors[p].presence in PRESENT for p in room.proctors)


def occupied(state: EventState) -> list[RoomState]:
    return [r for r in state.rooms if r.open and unfinished(state, r)]


def rooms_of(state: EventState) -> dict[str, set[str]]:
    """Proctor -> the ids of the rooms that list it."""
    out: dict[str, set[str]] = {p: set() for p in state.proctors}
    for r in state.rooms:
        for p in r.proctors:
            out.setdefault(p, set()).add(r.room_id)
    return out


def seats_of(state: EventState) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in state.rooms:
        for c in r.candidates:
            out.setdefault(c, []).append(r.room_id)
    return out


def open_seat(state: EventState, cid: str) -> str | None:
    for r in state.rooms:
        if r.open and cid in r.candidates:
            return r.room_id
    return None


def used(state: EventState, room: RoomState) -> bool:
    return bool(room.candidates) or any(c.room_id == room.room_id for c in state.candidates.values())


def named_by_unfinished(state: EventState, room: RoomState) -> bool:
    return any(c.room_id == room.room_id and c.presence != "finished" for c in state.candidates.values())


def loads(state: EventState) -> dict[str, int]:
    weight = {r.room_id: unfinished(state, r) for r in state.rooms if r.open}
    held = rooms_of(state)
    return {p: sum(weight.get(r, 0) for r in held.get(p, ())) for p in present(state)}


# ------------------------------------------------------------------ changing a state


def with_candidate(state: EventState, cid: str, presence: Presence) -> EventState:
    old = state.candidates.get(cid)
    c = CandidateState(cid, presence) if old is None else replace(old, presence=presence)
    return replace(state, candidates={**state.candidates, cid: c})


def with_proctor(state: EventState, pid: str, presence: Presence) -> EventState:
    return replace(state, proctors={**state.proctors, pid: ProctorState(pid, presence)})


def with_new_rooms(state: EventState, k: int) -> EventState:
    base = len(state.rooms)
    return replace(state, rooms=state.rooms + tuple(RoomState(f"new{base + j}") for j in range(k)))


# -------------------------------------------------------------------- the checks


def check_seats(before: EventState, p: Plan, after: EventState) -> None:
    n = before.capacity.room_size
    targets = {rid for _, rid in p.placements}
    for r in after.rooms:
        if r.room_id in targets:
            assert unfinished(after, r) <= n, f"{r.room_id} filled over N={n}"
    assert all(len(rs) == 1 for rs in seats_of(after).values()), "a candidate is in two rooms"
    for cid, c in before.candidates.items():
        seat = open_seat(before, cid)
        if seat is not None and c.presence != "finished":
            assert open_seat(after, cid) == seat, f"{cid} ({c.presence}) moved out of {seat}"
    for cid, c in after.candidates.items():
        if c.presence == "finished":
            assert cid not in seats_of(after), f"finished {cid} still holds a seat"
    for cid, c in after.candidates.items():
        if c.presence in PRESENT:
            assert (open_seat(after, cid) is not None) != (cid in p.unplaced), (
                f"{cid} neither seated nor unplaced"
            )
    if p.unplaced:
        for r in after.rooms:
            takeable = r.open and (unfinished(after, r) > 0 or not used(after, r))
            assert not takeable or unfinished(after, r) >= n, f"{r.room_id} had space for {p.unplaced}"
    assert p.rooms_needed == math.ceil(len(p.unplaced) / n) <= p.rooms_to_create
    check_returning(before, after)


def check_returning(before: EventState, after: EventState) -> None:
    """Present, unseated, naming an open room: back in it, as many as its free seats allow."""
    n = before.capacity.room_size
    rooms = {r.room_id: r for r in before.rooms}
    back: dict[str, list[str]] = {}
    for cid, c in before.candidates.items():
        old = rooms.get(c.room_id) if c.room_id else None
        if c.presence in PRESENT and open_seat(before, cid) is None and old is not None and old.open:
            back.setdefault(old.room_id, []).append(cid)
    for rid, cids in back.items():
        space = max(0, n - unfinished(before, rooms[rid]))
        returned = [c for c in cids if open_seat(after, c) == rid]
        assert len(returned) == min(space, len(cids)), f"returning {cids} not back in {rid}"


def check_rooms(before: EventState, p: Plan, after: EventState) -> None:
    expected = {
        r.room_id
        for old, r in zip(before.rooms, after.rooms, strict=True)
        if old.open and used(after, r) and unfinished(after, r) == 0 and not named_by_unfinished(after, r)
    }
    assert set(p.rooms_to_disable) == expected
    assert len(set(p.rooms_to_disable)) == len(p.rooms_to_disable)
    for r in after.rooms:
        if r.room_id in expected:
            assert not r.open


def check_proctors(p: Plan, after: EventState) -> None:
    cap = after.capacity
    n, m, limit = cap.room_size, cap.proctors_per_room, cap.proctor_load
    here = set(present(after))
    busy = occupied(after)
    for r in after.rooms:
        assert r.proctors <= here, f"{r.room_id} lists absent proctors"
        assert len(r.proctors) <= m, f"{r.room_id} has more than M={m} proctors"
        if r.proctors:
            assert r in busy, f"{r.room_id} has proctors but no unfinished candidate (or is closed)"
    unwatched = [r for r in busy if not r.proctors]
    weights = {r.room_id: unfinished(after, r) for r in busy}
    if len(here) >= len(busy) or (
        len(here) * max(1, limit // n) >= len(busy) and all(w <= n for w in weights.values())
    ):
        assert not unwatched, f"{len(here)} proctors, {len(busy)} rooms, unwatched {unwatched}"
    if any(len(r.proctors) > 1 for r in busy):
        assert not unwatched, "a room got a second proctor while another had none"
    load, held = loads(after), rooms_of(after)
    for q in here:
        if len(held[q]) > 1:
            assert load[q] <= limit, f"{q} holds {held[q]} with load {load[q]} > L={limit}"
    for h in here:
        for q in here:
            gap = load[h] - load[q]
            if gap <= n:
                continue
            for rid in held[h]:
                r = next(x for x in after.rooms if x.room_id == rid)
                stuck = q in r.proctors or (held[q] and load[q] + weights[rid] > limit) or weights[rid] >= gap
                assert stuck, f"{rid} could go from {h} ({load[h]}) to {q} ({load[q]})"
    if unwatched:
        assert p.shortage == Shortage(len(here), len(busy), len(unwatched))
    else:
        assert p.shortage is None


def check_fixpoint(p: Plan, after: EventState) -> None:
    assert apply(after, p) == after, "applying a plan twice is not applying it once"
    again = plan(after)
    assert again.is_empty, f"re-planning the applied state changed something: {again}"
    assert (again.rooms_to_create, again.unplaced, again.shortage) == (
        p.rooms_to_create,
        p.unplaced,
        p.shortage,
    )


def check_pool(after: EventState, p: Plan) -> None:
    """The service creates what was asked; then nobody is left unplaced and nothing more is asked."""
    served = with_new_rooms(after, p.rooms_to_create)
    q = plan(served)
    assert q.unplaced == () and q.rooms_to_create == 0, q
    done = apply(served, q)
    warm = [r for r in done.rooms if r.open and not used(done, r)]
    cands = done.candidates.values()
    going = not cands or any(c.presence != "finished" for c in cands)
    if going:
        assert len(warm) >= done.capacity.spare_rooms


def check_plan(before: EventState, p: Plan) -> EventState:
    after = apply(before, p)
    check_seats(before, p, after)
    check_rooms(before, p, after)
    check_proctors(p, after)
    check_fixpoint(p, after)
    check_pool(after, p)
    return after


# ------------------------------------------------------------------ generated states


@st.composite
def capacities(draw: st.DrawFn) -> Capacity:
    n = draw(st.integers(1, 5))
    return Capacity(
        room_size=n,
        proctors_per_room=draw(st.integers(1, 3)),
        proctor_load=draw(st.integers(1, 3 * n)),
        expected_candidates=draw(st.integers(0, 40)),
        spare_rooms=draw(st.integers(0, 2)),
        rotation_s=60.0,
    )


@st.composite
def states(draw: st.DrawFn) -> EventState:
    """Consistent states: a seat's candidate names that room; rooms may be closed, over-full
    (N was lowered), or listed with absent or too many proctors."""
    cap = draw(capacities())
    nr = draw(st.integers(0, 7))
    limit = cap.room_size + draw(st.sampled_from([0, 0, 0, 2]))
    opens = draw(st.lists(st.sampled_from([True, True, True, False]), min_size=nr, max_size=nr))
    seats: list[set[str]] = [set() for _ in range(nr)]
    cands = []
    people = draw(
        st.lists(st.tuples(st.sampled_from(PRESENCES), st.integers(-1, nr - 1), st.booleans()), max_size=30)
    )
    for k, (presence, room, sit) in enumerate(people):
        cid = f"c{k}"
        if room >= 0 and sit and len(seats[room]) < limit:
            seats[room].add(cid)
        cands.append(CandidateState(cid, presence, f"r{room}" if room >= 0 else None))
    staff = draw(
        st.lists(
            st.tuples(st.sampled_from(PRESENCES[:3]), st.sets(st.integers(0, max(nr - 1, 0)), max_size=3)),
            max_size=8,
        )
    )
    watchers: list[set[str]] = [set() for _ in range(nr)]
    for k, (_, held) in enumerate(staff):
        for i in held:
            if i < nr:
                watchers[i].add(f"p{k}")
    rooms = [
        RoomState(f"r{i}", opens[i], frozenset(seats[i]), frozenset(watchers[i]), draw(TIMES), draw(TIMES))
        for i in range(nr)
    ]
    proctors = [ProctorState(f"p{k}", presence) for k, (presence, _) in enumerate(staff)]
    return EventState.build(cap, rooms, cands, proctors, now=NOW)


@settings(max_examples=3000)
@given(states())
def test_every_plan_keeps_the_guarantees(state: EventState) -> None:
    check_plan(state, plan(state))


@settings(max_examples=600)
@given(states(), st.data())
def test_a_proctor_back_from_absence_moves_nobody_else(state: EventState, data: st.DataObject) -> None:
    stable = apply(state, plan(state))
    here = present(stable)
    if not here:
        return
    p = data.draw(st.sampled_from(here))
    assert plan(with_proctor(stable, p, "reconnecting")).is_empty, "a proctor within its grace moved someone"
    gone = apply(with_proctor(stable, p, "offline"), plan(with_proctor(stable, p, "offline")))
    assert not rooms_of(gone).get(p), "an absent proctor kept rooms"
    back = with_proctor(gone, p, "online")
    again = plan(back)
    before = rooms_of(back)
    gained = again.proctor_rooms.get(p, frozenset(before[p]))
    for q, new in again.proctor_rooms.items():
        if q == p:
            continue
        assert new <= before[q], f"{q} gained {set(new) - before[q]} when {p} came back"
        assert before[q] - new <= gained, f"{q} lost rooms that {p} did not take"
    assert not again.placements and not again.releases


# ------------------------------------------------------------------------ events

OPS = st.one_of(
    st.tuples(st.just("join"), st.booleans()),
    st.tuples(st.just("candidate"), st.integers(0, 99), st.sampled_from(PRESENCES)),
    st.tuples(st.just("proctor"), st.integers(0, 99), st.sampled_from(PRESENCES[:3])),
    st.tuples(st.just("new_proctor")),
    st.tuples(st.just("tick"), st.sampled_from([5.0, 30.0, 60.0, 120.0])),
    st.tuples(st.just("create")),
    st.tuples(st.just("close"), st.integers(0, 99)),
    st.tuples(st.just("capacity"), st.integers(1, 5), st.integers(1, 3), st.integers(1, 12)),
)


def check_joins(before: EventState, cid: str, p: Plan) -> EventState:
    """The fast path: only the joiner is seated, by the rules; a room it opens is watched if it can be."""
    assert p.placements == () or [c for c, _ in p.placements] == [cid]
    after = apply(before, p)
    n = before.capacity.room_size
    for _, rid in p.placements:
        room = next(r for r in after.rooms if r.room_id == rid)
        assert len(room.candidates) <= n
        has_space = [r for r in before.rooms if r.open and len(r.candidates) < n]
        seated_before = open_seat(before, cid)
        old = before.candidates[cid].room_id
        if seated_before is None and old not in {r.room_id for r in has_space}:
            best = min(
                has_space,
                key=lambda r: (
                    not r.candidates,
                    bool(r.candidates) and not watched(before, r),
                    -len(r.candidates),
                    before.rooms.index(r),
                ),
            )
            assert rid == best.room_id, f"{cid} went to {rid}, the rule says {best.room_id}"
        if not next(r for r in before.rooms if r.room_id == rid).candidates:
            idle = [q for q, held in rooms_of(before).items() if q in present(before) and not held]
            if idle:
                assert room.proctors, "a room opened by a join stayed unwatched with an idle proctor"
    if not p.placements and before.candidates[cid].presence in PRESENT and open_seat(before, cid) is None:
        assert p.unplaced == (cid,) and p.rooms_to_create >= 1
    assert all(len(rs) == 1 for rs in seats_of(after).values())
    opened = {rid for _, rid in p.placements}
    seats = {r.room_id: len(r.candidates) if r.open else 0 for r in after.rooms}
    had = rooms_of(before)
    for q, new in p.proctor_rooms.items():
        added = new - had.get(q, set())
        assert added <= opened and had.get(q, set()) <= new, f"{q} changed more than the joined room"
        was = sum(seats[r] for r in had.get(q, ()) if r not in added)
        assert was == 0 or was + sum(seats[r] for r in added) <= after.capacity.proctor_load, f"{q} over L"
    return after


def step(state: EventState, op: tuple[Any, ...]) -> EventState:
    kind = op[0]
    cids, pids = list(state.candidates), list(state.proctors)
    if kind == "join":
        cid = f"c{len(cids)}"
        state = with_candidate(state, cid, "online")
        if op[1]:
            state = check_joins(state, cid, place_joins(state, [cid]))
    elif kind == "candidate" and cids:
        cid = cids[op[1] % len(cids)]
        if state.candidates[cid].presence != "finished":  # finished is sticky
            state = with_candidate(state, cid, op[2])
    elif kind == "proctor" and pids:
        state = with_proctor(state, pids[op[1] % len(pids)], op[2])
    elif kind == "new_proctor":
        state = with_proctor(state, f"p{len(pids)}", "online")
    elif kind == "tick":
        state = replace(state, now=state.now + op[1])
    elif kind == "create":
        state = with_new_rooms(state, plan(state).rooms_to_create)
    elif kind == "close" and state.rooms:
        i = op[1] % len(state.rooms)
        rooms = list(state.rooms)
        rooms[i] = replace(rooms[i], open=False)
        state = replace(state, rooms=tuple(rooms))
    elif kind == "capacity":
        cap = replace(state.capacity, room_size=op[1], proctors_per_room=op[2], proctor_load=op[3])
        state = replace(state, capacity=cap)
    return state


@settings(max_examples=400)
@given(capacities(), st.lists(OPS, max_size=40))
def test_whole_events_keep_the_guarantees(cap: Capacity, ops: list[tuple[Any, ...]]) -> None:
    state = EventState.build(cap, now=0.0)
    for op in ops:
        state = step(state, op)
        state = check_plan(state, plan(state))


# ---------------------------------------------------------------------- rotation


def full_rooms(n_rooms: int, n_proctors: int, *, size: int = 2, rotation_s: float = 60.0) -> EventState:
    cap = Capacity(room_size=size, proctors_per_room=1, proctor_load=size, rotation_s=rotation_s)
    rooms, cands = [], []
    for i in range(n_rooms):
        ids = [f"c{i}-{k}" for k in range(size)]
        rooms.append(RoomState(f"r{i}", candidates=frozenset(ids)))
        cands += [CandidateState(c, "online", f"r{i}") for c in ids]
    return EventState.build(cap, rooms, cands, [ProctorState(f"p{k}") for k in range(n_proctors)], now=0.0)


@settings(max_examples=60)
@given(st.integers(1, 4), st.integers(1, 6), st.sampled_from([5.0, 10.0, 25.0]))
def test_rotation_spreads_unwatched_time(proctors: int, extra_rooms: int, dt: float) -> None:
    """Shortage (every room full, L = N): each room waits at most its turn in a round robin, the
    totals stay within one turn of each other, and no room loses its proctor within rotation_s."""
    rot, n_rooms = 60.0, proctors + extra_rooms
    state = full_rooms(n_rooms, proctors, rotation_s=rot)
    period = math.ceil(rot / dt) * dt
    turn = (math.ceil(extra_rooms / proctors) + 1) * period
    waiting_since = dict.fromkeys((r.room_id for r in state.rooms), 0.0)
    watched_since: dict[str, float] = {}
    longest, total = 0.0, dict.fromkeys(waiting_since, 0.0)
    horizon = 4 * turn + 2 * period
    while state.now <= horizon:
        p = plan(state)
        assert p.shortage == Shortage(proctors, n_rooms, extra_rooms)
        state = apply(state, p)
        for r in state.rooms:
            rid = r.room_id
            if r.proctors and rid in waiting_since:
                longest = max(longest, state.now - waiting_since.pop(rid))
                watched_since[rid] = state.now
            elif not r.proctors and rid in watched_since:
                assert state.now - watched_since.pop(rid) >= rot, f"{rid} rotated away early"
                waiting_since[rid] = state.now
            if not r.proctors:
                total[rid] += dt
        state = replace(state, now=state.now + dt)
    for since in waiting_since.values():
        longest = max(longest, state.now - since)
    assert longest <= turn, f"a room waited {longest}s, its turn is {turn}s"
    assert max(total.values()) - min(total.values()) <= turn


def test_rotation_waits_for_rotation_s_then_swaps() -> None:
    state = apply(full_rooms(2, 1), plan(full_rooms(2, 1)))
    assert [bool(r.proctors) for r in state.rooms] == [True, False]
    for t in (30.0, 59.0):
        assert plan(replace(state, now=t)).is_empty
    swap = plan(replace(state, now=60.0))
    assert swap.proctor_rooms == {"p0": frozenset({"r1"})}
    state = apply(replace(state, now=60.0), swap)
    assert plan(replace(state, now=61.0)).is_empty
    assert plan(replace(state, now=120.0)).proctor_rooms == {"p0": frozenset({"r0"})}


# ---------------------------------------------------------------------- examples


def event(
    cap: Capacity, rooms: list[RoomState], cands: list[CandidateState], proctors: list[str]
) -> EventState:
    return EventState.build(cap, rooms, cands, [ProctorState(p) for p in proctors], now=NOW)


def seated(room_id: str, *cids: str, presence: Presence = "online") -> list[CandidateState]:
    return [CandidateState(c, presence, room_id) for c in cids]


def test_first_arrival_asks_for_the_warm_pool() -> None:
    cap = Capacity(room_size=10, expected_candidates=100)
    assert plan(event(cap, [], [], [])).rooms_to_create == 11  # ceil(100 / 10) + 1 spare
    p = plan(event(cap, [], [CandidateState("c0")], []))
    assert (p.unplaced, p.rooms_needed, p.rooms_to_create) == (("c0",), 1, 11)


def test_pool_is_refilled_as_it_is_used_and_stops_when_all_finished() -> None:
    cap = Capacity(room_size=2, expected_candidates=4, spare_rooms=1)
    rooms = [RoomState("a", candidates=frozenset({"c0", "c1"})), RoomState("b")]
    state = event(cap, rooms, seated("a", "c0", "c1"), [])
    assert plan(state).rooms_to_create == 1  # 2 more expected need one room, and one spare
    all_four = seated("a", "c0", "c1", presence="finished") + seated("z", "c2", "c3", presence="finished")
    done = event(cap, [RoomState("a", candidates=frozenset({"c0", "c1"}))], all_four, [])
    assert plan(done).rooms_to_create == 0


def test_joins_fill_the_fullest_watched_room_first() -> None:
    cap = Capacity(room_size=6, proctor_load=30)
    rooms = [
        RoomState("a", candidates=frozenset({"a0", "a1", "a2"}), proctors=frozenset({"p"})),
        RoomState("b", candidates=frozenset({"b0", "b1", "b2", "b3", "b4"}), proctors=frozenset({"p"})),
        RoomState("c", candidates=frozenset({"c0", "c1", "c2", "c3", "c4"})),  # unwatched, as full
        RoomState("warm"),
    ]
    cands = seated("a", "a0", "a1", "a2") + seated("b", "b0", "b1", "b2", "b3", "b4")
    cands += [*seated("c", "c0", "c1", "c2", "c3", "c4"), CandidateState("x"), CandidateState("y")]
    state = event(cap, rooms, cands, ["p"])
    assert place_joins(state, ["x", "y"]).placements == (("x", "b"), ("y", "a"))
    assert plan(state).placements == (("x", "b"), ("y", "a"))


def test_a_returning_candidate_goes_back_to_its_old_room() -> None:
    cap = Capacity(room_size=4)
    rooms = [RoomState("a", candidates=frozenset({"a0", "a1", "a2"})), RoomState("old")]
    state = event(cap, rooms, [*seated("a", "a0", "a1", "a2"), CandidateState("back", "online", "old")], [])
    assert plan(state).placements == (("back", "old"),)
    assert place_joins(state, ["back"]).placements == (("back", "old"),)


def test_offline_candidates_keep_their_seat_and_come_back_to_it() -> None:
    cap = Capacity(room_size=2)
    rooms = [RoomState("a", candidates=frozenset({"c0", "c1"})), RoomState("b")]
    state = event(cap, rooms, seated("a", "c0") + seated("a", "c1", presence="offline"), [])
    p = plan(state)
    assert not p.placements and not p.releases and not p.rooms_to_disable
    back = apply(with_candidate(apply(state, p), "c1", "online"), Plan())
    assert plan(back).placements == () and open_seat(back, "c1") == "a"


def test_finishing_frees_seats_and_disables_the_emptied_room_only() -> None:
    cap = Capacity(room_size=2)
    rooms = [RoomState("a", candidates=frozenset({"c0"}), proctors=frozenset({"p"})), RoomState("warm")]
    state = event(cap, rooms, seated("a", "c0", presence="finished"), ["p"])
    p = plan(state)
    assert p.releases == (("c0", "a"),)
    assert p.rooms_to_disable == ("a",)
    assert p.proctor_rooms == {"p": frozenset()}
    after = apply(state, p)
    assert [r.open for r in after.rooms] == [False, True]


def test_present_candidates_of_a_closed_room_are_seated_anew() -> None:
    cap = Capacity(room_size=2)
    rooms = [RoomState("shut", open=False, candidates=frozenset({"c0", "c1"})), RoomState("b")]
    state = event(cap, rooms, seated("shut", "c0") + seated("shut", "c1", presence="offline"), [])
    assert plan(state).placements == (("c0", "b"),)


def test_an_absent_proctor_hands_its_rooms_over_at_once() -> None:
    cap = Capacity(room_size=2, proctor_load=4)
    rooms = [
        RoomState("a", candidates=frozenset({"a0"}), proctors=frozenset({"p"})),
        RoomState("b", candidates=frozenset({"b0"}), proctors=frozenset({"q"})),
    ]
    state = with_proctor(event(cap, rooms, seated("a", "a0") + seated("b", "b0"), ["p", "q"]), "p", "offline")
    assert plan(state).proctor_rooms == {"p": frozenset(), "q": frozenset({"a", "b"})}


def test_a_proctor_back_takes_rooms_without_moving_rooms_between_the_others() -> None:
    """Found by the property above: room c is larger than N (N lowered mid-event). Giving c to the
    returning s would leave q 3 below p, and p would then hand a room to q; s takes d and a instead."""
    cap = Capacity(room_size=2, proctor_load=4)
    rooms = [
        RoomState("a", candidates=frozenset({"a0", "a1"}), proctors=frozenset({"p"})),
        RoomState("b", candidates=frozenset({"b0", "b1"}), proctors=frozenset({"p"})),
        RoomState("c", candidates=frozenset({"c0", "c1", "c2"}), proctors=frozenset({"q"})),
        RoomState("d", candidates=frozenset({"d0"}), proctors=frozenset({"q"})),
    ]
    cands = (
        seated("a", "a0", "a1") + seated("b", "b0", "b1") + seated("c", "c0", "c1", "c2") + seated("d", "d0")
    )
    state = event(cap, rooms, cands, ["p", "q", "s"])
    again = plan(state)
    check_plan(state, again)
    held = rooms_of(state)
    gained = again.proctor_rooms["s"]
    for q in ("p", "q"):
        assert again.proctor_rooms[q] <= held[q] and held[q] - again.proctor_rooms[q] <= gained


def test_shortage_is_reported_with_its_numbers() -> None:
    p = plan(full_rooms(3, 2, size=10))
    assert p.shortage == Shortage(proctors_present=2, rooms_needing=3, rooms_unwatched=1)
    assert plan(full_rooms(3, 3, size=10)).shortage is None


def test_load_lets_one_proctor_watch_several_rooms_up_to_l() -> None:
    two = replace(full_rooms(2, 1, size=10), capacity=Capacity(room_size=10, proctor_load=20))
    assert plan(two).proctor_rooms == {"p0": frozenset({"r0", "r1"})}
    three = replace(full_rooms(3, 1, size=10), capacity=Capacity(room_size=10, proctor_load=20))
    assert plan(three).shortage == Shortage(1, 3, 1)


def test_second_proctors_only_once_every_room_has_one() -> None:
    cap = Capacity(room_size=2, proctors_per_room=2, proctor_load=2)
    four = replace(full_rooms(2, 4), capacity=cap)
    assert sorted(len(r.proctors) for r in apply(four, plan(four)).rooms) == [2, 2]
    three = replace(full_rooms(3, 3), capacity=cap)
    assert sorted(len(r.proctors) for r in apply(three, plan(three)).rooms) == [1, 1, 1]


def test_coverage_frees_second_proctors_when_no_single_swap_fits() -> None:
    """Three proctors all on rooms a and b (load 4 = L); c needs 3 more: no one can swap one
    room for c within L, so the seconds are freed and one of them takes c."""
    cap = Capacity(room_size=3, proctors_per_room=3, proctor_load=4)
    everyone = frozenset({"p", "q", "s"})
    rooms = [
        RoomState("a", candidates=frozenset({"a0", "a1"}), proctors=everyone),
        RoomState("b", candidates=frozenset({"b0", "b1"}), proctors=everyone),
        RoomState("c", candidates=frozenset({"c0", "c1", "c2"})),
    ]
    cands = seated("a", "a0", "a1") + seated("b", "b0", "b1") + seated("c", "c0", "c1", "c2")
    state = event(cap, rooms, cands, ["p", "q", "s"])
    p = plan(state)
    after = check_plan(state, p)
    assert p.shortage is None and all(r.proctors for r in after.rooms)


def test_at_most_m_proctors_stay_in_a_room() -> None:
    cap = Capacity(room_size=2, proctors_per_room=2, proctor_load=2)
    rooms = [RoomState("a", candidates=frozenset({"c0"}), proctors=frozenset({"p", "q", "s"}))]
    state = event(cap, rooms, seated("a", "c0"), ["p", "q", "s"])
    after = apply(state, plan(state))
    assert len(after.rooms[0].proctors) == 2


def test_balance_spreads_rooms_from_one_proctor_to_idle_ones() -> None:
    cap = Capacity(room_size=2, proctor_load=6)
    state = replace(full_rooms(3, 3), capacity=cap)
    rooms = tuple(replace(r, proctors=frozenset({"p0"})) for r in state.rooms)
    p = plan(replace(state, rooms=rooms))
    assert sorted(len(v) for v in p.proctor_rooms.values()) == [1, 1, 1]


def test_a_room_opened_by_a_join_gets_an_idle_proctor() -> None:
    cap = Capacity(room_size=2)
    state = event(cap, [RoomState("warm")], [CandidateState("x")], ["p"])
    p = place_joins(state, ["x"])
    assert p.placements == (("x", "warm"),) and p.proctor_rooms == {"p": frozenset({"warm"})}
    assert place_joins(state, ["nobody"]).is_empty


def test_a_room_opened_by_a_join_is_not_given_to_a_proctor_at_l() -> None:
    one = full_rooms(1, 1)  # N = L = 2: p0 watches r0's two candidates
    watched_one = apply(one, plan(one))
    state = with_candidate(replace(watched_one, rooms=(*watched_one.rooms, RoomState("warm"))), "x", "online")
    p = place_joins(state, ["x"])
    assert p.placements == (("x", "warm"),) and p.proctor_rooms == {}
    assert p.shortage == Shortage(proctors_present=1, rooms_needing=2, rooms_unwatched=1)


def test_capacity_rejects_impossible_numbers() -> None:
    with pytest.raises(ValueError, match="room_size"):
        Capacity(room_size=0)
    with pytest.raises(ValueError, match="rotation_s"):
        Capacity(rotation_s=0)
    with pytest.raises(ValueError, match="spare_rooms"):
        Capacity(spare_rooms=-1)
