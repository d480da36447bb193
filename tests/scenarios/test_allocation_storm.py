"""A join storm on two nodes sharing Redis: 600 candidates and 40 proctors, every seat and room checked."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.allocation_support import Listener, allocation, seats
from tests.client import login, token
from tests.conftest import SECRET, create_event
from tests.polling import eventually
from tests.servers import HubProcess, RedisServer, start_simulator


def check_rooms(alloc: dict[str, Any]) -> None:
    """Nobody in two rooms, no room over its size or its proctors (at any moment of the storm)."""
    listed = [c for r in alloc["rooms"] for c in r["candidates"]]
    assert len(listed) == len(set(listed)) == 600  # nobody in two rooms
    assert all(len(r["candidates"]) <= 20 and len(r["proctors"]) <= 2 for r in alloc["rooms"])


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

        async def read(node: HubProcess) -> dict[str, Any]:
            """The allocation, read off the event loop: a blocking read of 600 seats from a loaded hub
            stalled the 640 sockets' readers (the hub then closes a socket not read for 10 s, 1013)."""
            return await asyncio.to_thread(allocation, node, event)

        async def settled() -> bool:
            alloc = await read(nodes[0])
            placed = seats(alloc)
            occupied = [r for r in alloc["rooms"] if r["candidates"]]
            return len(placed) == 600 and all(r["proctors"] for r in occupied)

        await eventually(
            settled, timeout=60, interval=0.2, what="every candidate seated and every occupied room watched"
        )
        check_rooms(await read(nodes[0]))
        proctors = [p for p, _ in users[:40]]

        async def agreed() -> dict[str, Any] | None:
            """The allocation both nodes show, once every client's last room.assign matches it. Read
            afresh each time: seated and watched is not the end of it, the passes the last proctors'
            arrivals asked for may still give them rooms (and each one of them is told)."""
            alloc_a, alloc_b = await asyncio.gather(read(nodes[0]), read(nodes[1]))
            if alloc_a != alloc_b:
                return None
            placed = seats(alloc_a)
            proctor_rooms: dict[str, set[str]] = {}
            for r in alloc_a["rooms"]:
                for p in r["proctors"]:
                    proctor_rooms.setdefault(p, set()).add(r["room_id"])
            agree = len(placed) == 600 and all(listeners[c].rooms() == {room} for c, room in placed.items())
            if agree and all(listeners[p].rooms() == proctor_rooms.get(p, set()) for p in proctors):
                return alloc_a
            return None

        final = await eventually(
            agreed,
            timeout=20,
            interval=0.2,
            what="both nodes show one allocation and every client's last room.assign matches it",
        )
        check_rooms(final)
        assert all(r["proctors"] for r in final["rooms"] if r["candidates"]), "an occupied room unwatched"
    finally:
        simulator.stop()
