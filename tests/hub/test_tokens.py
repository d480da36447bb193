"""100ms tokens pushed before they expire, on real hubs with the in-process 100ms simulator."""

from __future__ import annotations

import asyncio
import random
import time

import httpx
import jwt

from server.hubs.tokens import refresh_at, refresh_lead
from server.store.records import HeldToken
from tests.client import login, token
from tests.conftest import SECRET, create_event
from tests.servers import HubProcess, RedisServer, start_simulator
from tests.token_support import TokenHolder


def test_refresh_lead_follows_the_lifetime() -> None:
    assert refresh_lead(20) == 20 / 3
    assert refresh_lead(540) == 180
    assert refresh_lead(600) == 60
    assert refresh_lead(3600) == 360
    assert refresh_lead(86400) == 8640


def test_tokens_minted_together_are_not_renewed_together() -> None:
    rng = random.Random(1)
    tokens = [HeldToken("e", f"u{i}", "r", "t", f"j{i}", 1000.0) for i in range(1000)]
    times = sorted(refresh_at(t, 60, rng) for t in tokens)
    assert all(1000 - 30 <= t <= 1000 - 20 for t in times)
    busiest = max(sum(1 for t in times if start <= t < start + 0.1) for start in times)
    assert busiest < 100


async def media_join(hub: HubProcess, hms_token: str) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(f"{hub.http}/hms-sim/media/join", json={"token": hms_token, "user_name": "t"})


async def test_pushed_tokens_join_and_tampered_ones_are_refused(hub_factory) -> None:
    hub = hub_factory()
    create_event(hub, "tok-join", token_ttl_s=600)
    client, _ = await login(hub.ws, token(SECRET, "c1", event="tok-join"))
    assign = await client.expect("room.assign")
    data = assign["data"]
    assert data["reason"] == "join" and data["room_name"].endswith("-tok-join-1")
    claims = jwt.decode(data["hms_token"], options={"verify_signature": False})
    assert claims["room_id"] == data["room_id"] and claims["user_id"] == "c1" and claims["type"] == "app"
    assert claims["exp"] == data["token_exp"] and 590 <= claims["exp"] - time.time() <= 600
    joined = await media_join(hub, data["hms_token"])
    assert joined.status_code == 200, joined.text
    assert joined.json()["room_id"] == data["room_id"]
    header, payload, signature = data["hms_token"].split(".")
    tampered = f"{header}.{payload}.{signature[:-3]}AAA"
    assert (await media_join(hub, tampered)).status_code == 401
    wrong_room = jwt.encode({**claims, "room_id": "0" * 24}, "not-the-secret" * 3, algorithm="HS256")
    assert (await media_join(hub, wrong_room)).status_code in (401, 404)


async def test_a_candidate_always_holds_a_valid_token(hub_factory) -> None:
    """token_ttl_s=20 for 90 s: checked every second, >= 4 refreshes, a reconnect mid-refresh."""
    hub = hub_factory()
    create_event(hub, "tok-90", token_ttl_s=20)
    client, _ = await login(hub.ws, token(SECRET, "c90", event="tok-90"))
    holder = TokenHolder(client)
    await asyncio.sleep(0.5)
    reconnected = False
    for second in range(90):
        now = time.time()
        assert holder.tokens, "no token at all"
        assert holder.current["token_exp"] > now + 1, f"at {second}s the newest token expires at once"
        if (
            not reconnected
            and second > 30
            and holder.current["type"] == "token.refresh"
            and now - holder.current["received"] < 1.0
        ):
            # Drop the socket right after a refresh arrived (its ack may be in flight) and come back.
            holder.stop()
            await client.close()
            client, _ = await login(hub.ws, token(SECRET, "c90", event="tok-90"))
            holder = TokenHolder(client)
            await asyncio.sleep(0.3)
            assert holder.tokens and holder.current["type"] == "room.assign"
            assert holder.current["reason"] == "recovery"
            assert holder.current["token_exp"] > time.time() + 5
            reconnected = True
        await asyncio.sleep(1)
    refreshes = [t for t in holder.tokens if t["type"] == "token.refresh"]
    assert reconnected
    assert len(refreshes) >= 2  # since the reconnect; the total is checked through the metrics
    metrics = httpx.get(f"{hub.http}/metrics").text
    sent = float(
        next(
            line.split()[1]
            for line in metrics.splitlines()
            if line.startswith("proctorhub_token_refreshes_sent_total")
        )
    )
    assert sent >= 4
    assert (await media_join(hub, holder.current["hms_token"])).status_code == 200
    holder.stop()


async def test_tabs_on_two_nodes_share_one_token(hub_factory, redis_server: RedisServer) -> None:
    keys = {"HMS_ACCESS_KEY": "simkey", "HMS_SECRET": "s" * 40, "HUB_SECRET": SECRET}
    simulator = start_simulator(keys)
    common = {"REDIS_URL": redis_server.url, "HMS_API_BASE": f"{simulator.http}/v2", **keys}
    node_a = hub_factory(HUB_NODE_ID="tok-a", **common)
    node_b = hub_factory(HUB_NODE_ID="tok-b", **common)
    create_event(node_a, "tok-tabs", token_ttl_s=15)
    tab_a, _ = await login(node_a.ws, token(SECRET, "c", event="tok-tabs"))
    first = (await tab_a.expect("room.assign"))["data"]
    tab_b, _ = await login(node_b.ws, token(SECRET, "c", event="tok-tabs"))
    second = (await tab_b.expect("room.assign"))["data"]
    assert second["room_id"] == first["room_id"] and second["hms_token"] == first["hms_token"]
    a, b = TokenHolder(tab_a, first), TokenHolder(tab_b, second)
    try:
        await asyncio.sleep(11)  # lifetime 15 s: refreshed 7.5-10 s after minting
        assert a.current["hms_token"] == b.current["hms_token"] != first["hms_token"]
        async with httpx.AsyncClient() as http:
            joined = await http.post(f"{simulator.http}/media/join", json={"token": a.current["hms_token"]})
        assert joined.status_code == 200, joined.text
    finally:
        a.stop()
        b.stop()
        simulator.stop()


async def test_proctors_see_the_candidates_room(hub_factory) -> None:
    hub = hub_factory()
    create_event(hub, "tok-seat", room_size=2)
    proctor, _ = await login(hub.ws, token(SECRET, "p", "proctor", "tok-seat"))
    seats = {}
    for user in ("c1", "c2", "c3"):
        client, _ = await login(hub.ws, token(SECRET, user, event="tok-seat"))
        seats[user] = (await client.expect("room.assign"))["data"]["room_id"]
    assert seats["c1"] == seats["c2"] != seats["c3"]  # room size 2: the third opens a second room
    rooms = await proctor.expect("room.assign", lambda m: len(m["data"]["rooms"]) == 2)
    assert rooms["data"]["reason"] == "rebalance"
    assert {r["room_id"] for r in rooms["data"]["rooms"]} == set(seats.values())
    roster = await proctor.expect("roster", lambda m: len(m["data"]["candidates"]) == 3)
    assert {c["candidate_id"]: c["room_id"] for c in roster["data"]["candidates"]} == seats
