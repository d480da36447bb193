"""Two nodes sharing one Redis, driven through random joins, leaves, finishes, proctors coming and going
and the death of the node that writes the event: the guarantees hold, and the single-process planner,
asked about the final state, would change nothing.

Each node is the allocation service as a hub runs it (its own RedisStore, its node channel, a writer
when it holds the event's lease); presence changes go straight to the store. Time is a shared fake
clock, so a killed writer's lease runs out when the test says so.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.allocation.planner import CandidateState, Capacity, EventState, ProctorState, RoomState, plan
from server.allocation.service import AllocationService, NoRoom
from server.allocation.writer import EventWriter, LeaseLost, Outcome
from server.background import Background
from server.store.records import ConnRef, EventConfig, UserRecord
from server.store.redis import RedisStore
from tests.conftest import flush
from tests.servers import RedisServer

EV = "cluster"
ROOM_SIZE = 3
LEASE_S = 0.6
log = logging.getLogger("tests.allocation_cluster")


class Rooms:
    """A 100ms stand-in shared by both nodes: room ids from one counter, creates never fail."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.disabled: set[str] = set()

    async def create_room(self, name: str, description: str) -> str:
        return f"room-{next(self._ids)}-{name}"

    async def disable_room(self, room_id: str) -> None:
        self.disabled.add(room_id)


class StoreFeed:
    """The users of the event read from the store each time (the hub uses its snapshots instead)."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store

    async def users(self, event_id: str) -> list[UserRecord]:
        return await self._store.presence.list_users(event_id)

    async def hold(self, event_id: str) -> None:
        return None

    async def release(self, event_id: str) -> None:
        return None


@dataclass
class Node:
    name: str
    store: RedisStore
    service: AllocationService
    background: Background
    conns: itertools.count = field(default_factory=lambda: itertools.count(1))
    alive: bool = True


async def start_node(name: str, url: str, rooms: Rooms, now: list[float], outcomes: list[Outcome]) -> Node:
    store = RedisStore(url)
    background = Background(log)

    async def notify(outcome: Outcome) -> None:
        outcomes.append(outcome)

    service = AllocationService(
        store,
        rooms,
        prefix="t",
        node_id=name,
        clock=lambda: now[0],
        notify=notify,
        feed=StoreFeed(store),
        background=background,
        lease_s=LEASE_S,
        attempt_s=0.5,
    )
    await store.pubsub.listen(name)
    service.start()
    return Node(name, store, service, background)


async def kill(node: Node) -> None:
    """The node dies: no lease handed back, its channel goes silent."""
    node.alive = False
    await node.background.stop()
    await node.store.close()


Op = tuple[str, int, int]  # (what, who, node)
OPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["join", "join", "join", "leave", "return", "finish", "proctor", "proctor_leave", "pass", "kill"]
        ),
        st.integers(0, 11),
        st.integers(0, 1),
    ),
    min_size=4,
    max_size=22,
)


async def run_ops(url: str, ops: list[Op]) -> tuple[dict[str, str], list[RedisStore]]:
    now = [1000.0]
    rooms, outcomes = Rooms(), []
    nodes = [await start_node(f"n{i}", url, rooms, now, outcomes) for i in range(2)]
    spare = 2
    await nodes[0].store.events.create_event(
        EventConfig(EV, EV, room_size=ROOM_SIZE, proctor_load=2 * ROOM_SIZE, expected_candidates=6)
    )
    seats: dict[str, str] = {}
    finished: set[str] = set()
    conns: dict[str, ConnRef] = {}

    async def seat(node: Node, cid: str) -> None:
        try:
            room = await node.service.seat(EV, cid)
        except NoRoom:
            return  # asked again at its next connect; the final check covers what is owed
        assert seats.setdefault(cid, room) == room, f"{cid} moved from {seats[cid]} to {room}"

    pending: list[asyncio.Task[None]] = []
    for what, who, at in ops:
        live = [n for n in nodes if n.alive]
        node = live[at % len(live)]
        cid, pid = f"c{who}", f"p{who % 4}"
        now[0] += 0.1
        presence = node.store.presence
        if what in ("join", "return") and cid not in finished and cid not in conns:
            conns[cid] = ConnRef(EV, cid, f"{node.name}/{next(node.conns)}", node.name)
            await presence.connect(conns[cid], role="candidate", name=None, now=now[0])
            pending.append(asyncio.create_task(seat(node, cid)))
        elif what == "leave" and cid in conns:
            await presence.disconnect(conns.pop(cid), now=now[0], grace_s=0.05)
            await presence.expire_graces(now[0] + 0.1)
        elif what == "finish" and cid in conns:
            await presence.finish(EV, cid, now=now[0])
            finished.add(cid)
            node.service.request(EV)
        elif what == "proctor":
            await presence.connect(
                ConnRef(EV, pid, f"{node.name}/p{who}", node.name), role="proctor", name=None, now=now[0]
            )
            node.service.request(EV)
        elif what == "proctor_leave":
            await presence.disconnect(
                ConnRef(EV, pid, f"{node.name}/p{who}", node.name), now=now[0], grace_s=0.05
            )
            await presence.expire_graces(now[0] + 0.1)
            node.service.request(EV)
        elif what == "pass":
            node.service.request(EV)
        elif what == "kill" and len(live) == 2:
            writer = await node.store.locks.lock_owner(f"alloc:{EV}", now=now[0])
            victim = next((n for n in live if n.name == writer), None)
            if victim is not None:
                await asyncio.gather(*pending, return_exceptions=True)
                await kill(victim)
                now[0] += LEASE_S + 0.5  # its lease runs out
                for ref in [r for r in conns.values() if r.node_id == victim.name]:
                    conns.pop(ref.user_id)  # its sockets are reaped, as the presence sweep would
                    await live[0 if live[1] is victim else 1].store.presence.disconnect(
                        ref, now=now[0], grace_s=0.05
                    )
                await asyncio.sleep(LEASE_S)  # the survivor's idea of who writes runs out too
        if len(pending) > spare:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)
    survivor = next(n for n in nodes if n.alive)
    await asyncio.wait_for(survivor.service.request(EV), 10)
    for cid in conns:  # everyone still connected has a seat
        if cid not in finished:
            await seat(survivor, cid)
    await asyncio.wait_for(survivor.service.request(EV), 10)
    stores = [n.store for n in nodes if n.alive]
    for node in nodes:
        if node.alive:
            await node.service.stop()
            await node.background.stop()
    return seats, stores


async def check(store: RedisStore, seats: dict[str, str]) -> None:
    members = await store.allocation.room_members(EV)
    users = {u.user_id: u for u in await store.presence.list_users(EV)}
    listed = [c for cands in members.values() for c in cands]
    assert len(listed) == len(set(listed)), "a candidate sits in two rooms"
    assert all(len(cands) <= ROOM_SIZE for cands in members.values()), "a room over its size"
    seat_of = {c: room for room, cands in members.items() for c in cands}
    for cid, room in seats.items():
        if users[cid].presence != "finished":
            assert seat_of.get(cid) == room, f"{cid} lost or changed its seat"
            assert users[cid].room_id == room
        else:
            assert cid not in seat_of, f"finished {cid} still holds a seat"
    for user in users.values():
        if user.role == "candidate" and user.presence == "online":
            assert user.user_id in seat_of, f"online {user.user_id} has no seat"
    document = await store.allocation.load_allocation(EV)
    metas = document.get("rooms", {})
    state = EventState.build(
        Capacity(room_size=ROOM_SIZE, proctor_load=2 * ROOM_SIZE, expected_candidates=6),
        [
            RoomState(
                r.room_id,
                open=metas.get(r.room_id, {}).get("open", True),
                candidates=frozenset(members.get(r.room_id, ())),
                proctors=frozenset(metas.get(r.room_id, {}).get("proctors", ())),
                unwatched_since=metas.get(r.room_id, {}).get("unwatched_since"),
                watched_since=metas.get(r.room_id, {}).get("watched_since"),
            )
            for r in await store.allocation.list_rooms(EV)
        ],
        [CandidateState(u.user_id, u.presence, u.room_id) for u in users.values() if u.role == "candidate"],
        [ProctorState(u.user_id, u.presence) for u in users.values() if u.role == "proctor"],
        now=max((m.get("watched_since") or 0) for m in metas.values()) if metas else 0.0,
    )
    decided = plan(state)
    assert not decided.placements and not decided.releases and not decided.rooms_to_disable, decided
    present = [p for p in state.proctors.values() if p.presence in ("online", "reconnecting")]
    occupied = [r for r in state.rooms if r.open and r.candidates]
    if len(present) >= len(occupied):
        assert all(r.proctors & {p.proctor_id for p in present} for r in occupied), "a room unwatched"


@settings(max_examples=12, deadline=None)
@given(OPS)
def test_two_nodes_keep_the_guarantees_whatever_happens(redis_server: RedisServer, ops: list[Op]) -> None:
    async def scenario() -> None:
        await flush(redis_server.url)
        seats, stores = await run_ops(redis_server.url, ops)
        try:
            await check(stores[0], seats)
        finally:
            for store in stores:
                await store.close()

    asyncio.run(scenario())


def make_writer(store: RedisStore, event: EventConfig, fence: int) -> EventWriter:
    async def notify(outcome: Outcome) -> None:
        return None

    return EventWriter(
        event,
        fence,
        store=store,
        factory=Rooms(),
        feed=StoreFeed(store),
        prefix="t",
        clock=lambda: 1000.0,
        notify=notify,
        background=Background(log),
    )


CLUSTER_EVENT = EventConfig(EV, EV, room_size=ROOM_SIZE, proctor_load=2 * ROOM_SIZE, expected_candidates=6)


async def test_a_writer_that_stopped_answers_at_once(redis_server: RedisServer) -> None:
    """A request that picked a writer just before its lease moved is told to ask again, not left
    waiting for a loop that has ended (it waited its whole 10 s deadline once)."""
    await flush(redis_server.url)
    store = RedisStore(redis_server.url)
    try:
        await store.events.create_event(CLUSTER_EVENT)
        writer = make_writer(store, CLUSTER_EVENT, 1)
        await writer.load()
        writer.fail_all(LeaseLost("the allocation moved"))
        asked = [writer.seat("c0"), writer.request_pass()]
        assert all(future.done() for future in asked)
        for future in asked:
            assert isinstance(future.exception(), LeaseLost)
    finally:
        await store.close()


@pytest.mark.parametrize("first", ["seat", "pass"])
async def test_the_write_that_finds_the_lease_moved_answers_its_own_waiters(
    redis_server: RedisServer, first: str
) -> None:
    """What a write had taken out of the queues (joins, pass requests) is owed an answer too when
    its commit finds another node's fence: it waited out its whole deadline once."""
    await flush(redis_server.url)
    store = RedisStore(redis_server.url)
    try:
        await store.events.create_event(CLUSTER_EVENT)
        name = f"alloc:{EV}"
        fence = await store.locks.acquire_lock(name, "n0", now=1000.0, ttl_s=LEASE_S)
        assert fence is not None
        writer = make_writer(store, CLUSTER_EVENT, fence)
        await writer.load()
        running = asyncio.create_task(writer.run())
        await store.presence.connect(ConnRef(EV, "c0", "n0/1", "n0"), role="candidate", name=None, now=1000.0)
        await asyncio.wait_for(writer.seat("c0"), 10)  # a room exists, c0 sits in it
        assert await store.locks.acquire_lock(name, "n1", now=1000.0 + 2 * LEASE_S, ttl_s=LEASE_S)
        if first == "seat":
            ref, role = ConnRef(EV, "c1", "n0/2", "n0"), "candidate"
        else:
            ref, role = ConnRef(EV, "p0", "n0/3", "n0"), "proctor"  # a pass would give p0 the room
        await store.presence.connect(ref, role=role, name=None, now=1000.0)
        asked: asyncio.Future[Any] = writer.seat("c1") if first == "seat" else writer.request_pass()
        await asyncio.wait_for(asyncio.gather(asked, return_exceptions=True), 10)
        assert isinstance(asked.exception(), LeaseLost)
        await asyncio.wait_for(running, 10)
    finally:
        await store.close()
