"""Two hub processes on one real Redis: presence and messages cross nodes; a dead node is noticed."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx

from tests.client import login, open_client, token
from tests.conftest import API_KEY, SECRET, create_event
from tests.polling import eventually
from tests.servers import RedisServer, start_redis, start_simulator


def status_of(candidate: str, presence: str):
    return lambda m: m["data"]["candidate_id"] == candidate and m["data"]["presence"] == presence


async def test_presence_crosses_nodes_and_a_killed_node_releases_its_users(
    hub_factory, redis_server: RedisServer
) -> None:
    common = {
        "REDIS_URL": redis_server.url,
        "HMS_SIMULATOR": "embedded",  # presence only: no room crosses nodes
        "HUB_PRESENCE_GRACE_S": 2,
        "HUB_NODE_TTL_S": 1,
        "HUB_STATS_INTERVAL_S": 0.2,
    }
    node_a = hub_factory(HUB_NODE_ID="node-a", **common)
    node_b = hub_factory(HUB_NODE_ID="node-b", **common)
    event = "two-nodes"
    proctor, hello = await login(node_a.ws, token(SECRET, "p1", "proctor", event))
    assert hello["data"]["node"] == "node-a"
    admin, _ = await login(node_a.ws, token(SECRET, "a1", "admin", event))

    candidate, hello = await login(node_b.ws, token(SECRET, "c1", event=event))
    assert hello["data"]["node"] == "node-b"
    await admin.expect("candidate.status", status_of("c1", "online"))

    # A warning from node A reaches the candidate's socket on node B.
    await proctor.send("warn", {"candidate_id": "c1", "text": "camera please"})
    assert (await candidate.expect("warning"))["data"]["text"] == "camera please"

    # Socket drop and return within the grace: reconnecting, then online, never offline.
    await candidate.close()
    await admin.expect("candidate.status", status_of("c1", "reconnecting"))
    candidate, _ = await login(node_b.ws, token(SECRET, "c1", event=event))
    await admin.expect("candidate.status", status_of("c1", "online"))
    await asyncio.sleep(2.5)

    # Node B dies without a word: node A notices its missing liveness, then the grace runs out.
    node_b.kill()
    await admin.expect("candidate.status", status_of("c1", "reconnecting"), timeout=5)
    await admin.expect("candidate.status", status_of("c1", "offline"), timeout=5)
    seen = admin.presences()
    assert seen == ["online", "reconnecting", "online", "reconnecting", "offline"]
    # The event has no rooms: the proctor was shown no candidate, so no status of one reached it.
    assert proctor.presences() == []
    stats = await admin.expect("event.stats", lambda m: m["data"]["offline"] == 1)
    assert stats["data"]["online"] == 0 and stats["data"]["proctors"] == 1


async def test_a_user_with_tabs_on_two_nodes_is_one_user(hub_factory, redis_server: RedisServer) -> None:
    common = {"REDIS_URL": redis_server.url, "HMS_SIMULATOR": "embedded", "HUB_PRESENCE_GRACE_S": 1}
    node_a = hub_factory(HUB_NODE_ID="tabs-a", **common)
    node_b = hub_factory(HUB_NODE_ID="tabs-b", **common)
    event = "two-nodes-tabs"
    proctor, _ = await login(node_a.ws, token(SECRET, "p", "proctor", event))
    admin, _ = await login(node_a.ws, token(SECRET, "a", "admin", event))
    tab_a, _ = await login(node_a.ws, token(SECRET, "c", event=event))
    tab_b, _ = await login(node_b.ws, token(SECRET, "c", event=event))
    await admin.expect("candidate.status", status_of("c", "online"))
    await tab_a.close()
    await asyncio.sleep(1.5)
    await tab_b.send("ping")
    await tab_b.expect("pong")
    assert admin.presences() == ["online"]
    # The proctor on node A flags; a proctor on node B sees it.
    other, _ = await login(node_b.ws, token(SECRET, "p2", "proctor", event))
    await proctor.send("flag", {"candidate_id": "c", "note": "noise", "severity": "medium"})
    assert (await other.expect("flag.added"))["data"]["note"] == "noise"


async def test_a_stalled_node_registers_its_sockets_again(hub_factory, redis_server: RedisServer) -> None:
    """SIGSTOP past the node TTL: the others reap it; on SIGCONT its live sockets are online again."""
    common = {
        "REDIS_URL": redis_server.url,
        "HMS_SIMULATOR": "embedded",
        "HUB_PRESENCE_GRACE_S": 30,
        "HUB_NODE_TTL_S": 1,
    }
    node_a = hub_factory(HUB_NODE_ID="stall-a", **common)
    node_b = hub_factory(HUB_NODE_ID="stall-b", **common)
    event = "two-nodes-stall"
    admin, _ = await login(node_a.ws, token(SECRET, "a", "admin", event))
    await login(node_b.ws, token(SECRET, "c", event=event))
    await admin.expect("candidate.status", status_of("c", "online"))
    node_b.proc.send_signal(signal.SIGSTOP)
    try:
        await admin.expect("candidate.status", status_of("c", "reconnecting"), timeout=5)
    finally:
        node_b.proc.send_signal(signal.SIGCONT)
    await admin.expect("candidate.status", status_of("c", "online"), timeout=5)


async def test_redis_gone_means_1013_and_not_ready(hub_factory) -> None:
    own_redis = start_redis()
    hub = hub_factory(REDIS_URL=own_redis.url, HMS_SIMULATOR="embedded")
    own_redis.stop()
    client = await open_client(hub.ws)
    await client.send("auth", {"token": token(SECRET, "c-unlucky", event="no-redis")})
    assert await client.closed_with(timeout=15) == 1013
    assert httpx.get(f"{hub.http}/readyz", timeout=10).status_code == 503
    assert hub.proc.poll() is None


async def test_a_killed_nodes_users_left_when_it_died_not_when_it_was_reaped(
    hub_factory, redis_server: RedisServer
) -> None:
    """SIGKILL: the reaper finds the node dead a TTL later, but dates its users' drops at the node's
    last liveness renewal, so their gaps (presence and the recording monitor's timeline) start then."""
    keys = {"HMS_ACCESS_KEY": "simkey", "HMS_SECRET": "s" * 40}
    simulator = start_simulator(keys)
    try:
        ttl_s = 3.0
        common = {
            "REDIS_URL": redis_server.url,
            "HMS_API_BASE": f"{simulator.http}/v2",
            "HUB_PRESENCE_GRACE_S": 30,
            "HUB_NODE_TTL_S": ttl_s,
            **keys,
        }
        node_a = hub_factory(HUB_NODE_ID="dated-a", **common)
        node_b = hub_factory(HUB_NODE_ID="dated-b", **common)
        event = "two-nodes-dated-reap"
        create_event(node_b, event)
        proctor, _ = await login(node_b.ws, token(SECRET, "p", "proctor", event))
        await login(node_a.ws, token(SECRET, "c", event=event))
        await proctor.expect(
            "roster", lambda m: [c["candidate_id"] for c in m["data"]["candidates"]] == ["c"]
        )

        def timeline_present() -> list[list[int | None]] | None:
            answer = httpx.get(
                f"{node_b.http}/api/v1/events/{event}/candidates/c/timeline",
                headers={"Authorization": f"Bearer {API_KEY}"},
                timeout=5,
            )
            return answer.json()["intervals"]["present"] if answer.status_code == 200 else None

        # node A's monitor writes the arrival in the background: kill it once that is stored
        await eventually(timeline_present, interval=0.05, what="the arrival on the candidate's timeline")
        killed_at = time.time()
        node_a.kill()
        gone = await proctor.expect("candidate.status", status_of("c", "reconnecting"), timeout=ttl_s + 10)
        left_at = gone["data"]["since"] / 1000
        assert killed_at - ttl_s <= left_at <= killed_at, (left_at - killed_at, "s after the kill")

        def presence_ends() -> list[int | None] | None:
            present = timeline_present()
            return [end for _, end in present] if present and present[-1][1] is not None else None

        ends = await eventually(
            presence_ends, timeout=10, what="the candidate's presence closed on its timeline"
        )
        assert ends[-1] / 1000 <= killed_at, (ends[-1] / 1000 - killed_at, "s after the kill")
    finally:
        simulator.stop()
