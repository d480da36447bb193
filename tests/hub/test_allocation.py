"""Allocation on real hubs: seats, proctors, reassignment, and room creation that fails for a while."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.allocation_support import Listener, allocation, seats
from tests.client import login, token
from tests.conftest import SECRET, create_event
from tests.polling import eventually
from tests.servers import start_simulator


async def test_a_lost_proctor_is_replaced_and_candidates_stay(hub_factory) -> None:
    hub = hub_factory(HUB_PRESENCE_GRACE_S=2)
    event = "alloc-loss"
    create_event(hub, event, room_size=10, proctors_per_room=1, proctor_load=20)
    proctors = {
        p: Listener((await login(hub.ws, token(SECRET, p, "proctor", event)))[0]) for p in ("p1", "p2", "p3")
    }
    for i in range(30):
        Listener((await login(hub.ws, token(SECRET, f"c{i}", event=event)))[0])
    await eventually(lambda: len(seats(allocation(hub, event))) == 30, timeout=20, what="30 seated")
    before = allocation(hub, event)
    victim = next(p for r in before["rooms"] if r["candidates"] for p in r["proctors"])
    victim_rooms = {r["room_id"] for r in before["rooms"] if victim in r["proctors"]}
    proctors[victim].task.cancel()
    proctors[victim].client.ws.transport.abort()  # the proctor's machine drops off the network
    lost_at = time.monotonic()

    def reassigned() -> bool:
        alloc = allocation(hub, event)
        return all(r["proctors"] and victim not in r["proctors"] for r in alloc["rooms"] if r["candidates"])

    await eventually(reassigned, timeout=30, what="the lost proctor's rooms handed over")
    took = time.monotonic() - lost_at
    after = allocation(hub, event)
    assert seats(after) == seats(before), "candidates never move"
    # Not before the grace (a blip must not move rooms). How soon after it is a figure, measured by
    # `load_tests.benches.storm_bench loss`, never asserted here: a loaded machine only makes it later.
    assert took >= 2, f"reassigned after {took:.1f}s, before the 2 s grace ended"
    heirs = {p for r in after["rooms"] if r["room_id"] in victim_rooms for p in r["proctors"]}
    await eventually(
        lambda: all(victim_rooms & proctors[h].rooms() for h in heirs), timeout=5, what="heirs told"
    )
    for heir in heirs:
        assert proctors[heir].roster is not None and len(proctors[heir].roster) >= 10


async def test_a_candidate_comes_back_to_its_room(hub_factory) -> None:
    hub = hub_factory(HUB_PRESENCE_GRACE_S=1)
    event = "alloc-return"
    create_event(hub, event, room_size=2)
    client, _ = await login(hub.ws, token(SECRET, "back", event=event))
    first = (await client.expect("room.assign"))["data"]
    others = [(await login(hub.ws, token(SECRET, f"o{i}", event=event)))[0] for i in range(3)]
    for other in others:
        await other.expect("room.assign")
    await client.close()
    again, _ = await login(hub.ws, token(SECRET, "back", event=event))  # within the grace
    second = (await again.expect("room.assign"))["data"]
    assert second["room_id"] == first["room_id"] and second["reason"] == "recovery"
    await again.close()
    await asyncio.sleep(2.5)  # past the grace: offline, the seat is still its own
    later, _ = await login(hub.ws, token(SECRET, "back", event=event))
    third = (await later.expect("room.assign"))["data"]
    assert third["room_id"] == first["room_id"]


async def test_room_creation_failures_delay_placements_but_lose_none(hub_factory) -> None:
    keys = {"HMS_ACCESS_KEY": "simkey", "HMS_SECRET": "s" * 40, "HUB_SECRET": SECRET}
    simulator = start_simulator(keys)
    try:
        rule = {"kind": "rest.500", "count": 12, "path_prefix": "/v2/rooms"}
        assert httpx.post(f"{simulator.http}/_sim/faults", json=rule).status_code in (200, 201)
        hub = hub_factory(HMS_API_BASE=f"{simulator.http}/v2", **keys)
        event = "alloc-faults"
        create_event(hub, event, room_size=5)
        clients = [(await login(hub.ws, token(SECRET, f"c{i}", event=event)))[0] for i in range(12)]
        assigned = await asyncio.gather(*(c.expect("room.assign", timeout=40) for c in clients))
        assert len({a["data"]["room_id"] for a in assigned}) >= 3
        assert len(seats(allocation(hub, event))) == 12
        injected = httpx.get(f"{simulator.http}/_sim/log").json()["injected"]
        assert len([i for i in injected if i["kind"] == "rest.500"]) == 12
    finally:
        simulator.stop()
