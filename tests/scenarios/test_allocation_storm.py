"""A join storm on two nodes sharing Redis: 600 candidates and 40 proctors, every seat and room checked."""

from __future__ import annotations

import asyncio

from tests.allocation_support import Listener, allocation, seats
from tests.client import login, token
from tests.conftest import SECRET, create_event
from tests.polling import eventually
from tests.servers import RedisServer, start_simulator


async def test_600_candidates_and_40_proctors_on_two_nodes(hub_factory, redis_server: RedisServer) -> None:
    keys = {"HMS_ACCESS_KEY": "simkey", "HMS_SECRET": "s" * 40, "HUB_SECRET": SECRET}
    simulator = start_simulator(keys)
    try:
        common = {
            "REDIS_URL": redis_server.url,
            "HMS_API_BASE": f"{simulator.http}/v2",
            "HUB_RATE_PER_S": 100,
            **keys,
        }
        nodes = [hub_factory(HUB_NODE_ID="alloc-a", **common), hub_factory(HUB_NODE_ID="alloc-b", **common)]
        event = "alloc-600"
        create_event(
            nodes[0], event, room_size=20, proctors_per_room=2, proctor_load=20, expected_candidates=600
        )
        users = [(f"p{i}", "proctor") for i in range(40)] + [(f"c{i}", "candidate") for i in range(600)]
        # A storm: latency is measured by load_tests; here every login must just get through.
        logins = [
            login(nodes[i % 2].ws, token(SECRET, u, role, event), timeout=30)
            for i, (u, role) in enumerate(users)
        ]
        clients = await asyncio.gather(*logins)
        listeners = {u: Listener(c) for (u, _), (c, _) in zip(users, clients, strict=True)}

        def settled() -> bool:
            alloc = allocation(nodes[0], event)
            placed = seats(alloc)
            occupied = [r for r in alloc["rooms"] if r["candidates"]]
            return len(placed) == 600 and all(r["proctors"] for r in occupied)

        await eventually(settled, timeout=60, what="every candidate seated and every occupied room watched")
        alloc_a, alloc_b = allocation(nodes[0], event), allocation(nodes[1], event)
        assert alloc_a == alloc_b
        placed = seats(alloc_a)
        listed = [c for r in alloc_a["rooms"] for c in r["candidates"]]
        assert len(listed) == len(set(listed)) == 600  # nobody in two rooms
        assert all(len(r["candidates"]) <= 20 and len(r["proctors"]) <= 2 for r in alloc_a["rooms"])
        proctor_rooms: dict[str, set[str]] = {}
        for r in alloc_a["rooms"]:
            for p in r["proctors"]:
                proctor_rooms.setdefault(p, set()).add(r["room_id"])

        def clients_agree() -> bool:
            return all(listeners[c].rooms() == {room} for c, room in placed.items()) and all(
                listeners[p].rooms() == proctor_rooms.get(p, set()) for p, _ in users[:40]
            )

        await eventually(
            clients_agree, timeout=20, what="every client's last room.assign matches the allocation"
        )
    finally:
        simulator.stop()
