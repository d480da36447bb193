"""The load tester's network loss holds for a socket still connecting, against a real hub.

A simulated user's network can go (churn, a proctor's loss) while it is between two sockets, its
next one being opened. A real network loss ends that connection too; the simulated one used to
let it through, so the user came online on the hub in the middle of its own outage (seen once
during a node kill: a churned candidate never went `reconnecting` and its video gap was never
alerted). Now the socket is dropped as soon as it opens, nothing reaches the hub, and no failure
to connect is counted; once the network is back the user connects as before.
"""

from __future__ import annotations

import asyncio

import httpx

from load_tests.users import wire
from load_tests.users.sim_user import SimUser
from tests.conftest import API_KEY, create_event
from tests.hub.test_loadtest_backfill import _shared
from tests.polling import eventually
from tests.servers import HubProcess

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def online(hub: HubProcess, event: str) -> int:
    response = httpx.get(f"{hub.http}/api/v1/events/{event}", headers=AUTH, timeout=10)
    assert response.status_code == 200, response.text
    return int(response.json()["counts"]["online"])


async def test_a_socket_opened_while_the_network_is_gone_never_brings_the_user_online(
    shared_hub: HubProcess,
) -> None:
    event = "lt-net-loss"
    create_event(shared_hub, event, room_size=5, expected_candidates=1)
    shared = _shared(shared_hub.http, shared_hub.ws, event)
    user = SimUser(shared, "c1", "json")
    try:
        connecting = asyncio.get_running_loop().create_task(user._connect_once())
        user.lose_network(60)  # before the task runs: the network goes while the socket connects
        assert await asyncio.wait_for(connecting, 20) == wire.ABNORMAL
        assert (user.connections, shared.records.links, dict(shared.records.errors)) == (0, [], {})
        assert online(shared_hub, event) == 0

        user.offline_until = 0.0  # the network is back: the same user gets in
        connecting = asyncio.get_running_loop().create_task(user._connect_once())
        await eventually(lambda: user.is_open, timeout=20, what="the user's socket open with its hello")
        await eventually(lambda: online(shared_hub, event) == 1, timeout=10, what="the user online")
        user.stop(1000)
        assert await asyncio.wait_for(connecting, 20) == 1000
        assert user.connections == 1 and [link[0] for link in shared.records.links] == ["c1"]
    finally:
        user.stop(1000)
        await shared.aclose()
