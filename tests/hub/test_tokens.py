"""100ms tokens on real hubs with the embedded 100ms simulator: minted, pushed, refreshed, joined.

When refreshes come, and what two nodes or a lost ack do to them, is tested on a fake clock in
test_token_keeper.py; the schedule itself in tests/unit/test_token_schedule.py."""

from __future__ import annotations

import time

import httpx
import jwt

from tests.client import login, token
from tests.conftest import SECRET, create_event
from tests.polling import eventually
from tests.servers import HubProcess
from tests.token_support import TokenHolder


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


async def test_a_pushed_refresh_is_acked_and_joins_the_media_plane(hub_factory) -> None:
    """The real-server smoke of token refresh (its timing is tested on a fake clock in
    test_token_keeper.py): the shortest lifetime allowed, 10 s, is renewed 5-6.7 s after minting."""
    hub = hub_factory()
    create_event(hub, "tok-smoke", token_ttl_s=10)
    client, _ = await login(hub.ws, token(SECRET, "c1", event="tok-smoke"))
    message = await client.expect("room.assign")
    await client.send("ack", {"id": message["id"]})
    assign = message["data"]
    holder = TokenHolder(client, assign)
    try:
        refresh = await eventually(
            lambda: next((t for t in holder.tokens if t["type"] == "token.refresh"), None),
            timeout=20,
            what="a token.refresh",
        )
        assert refresh["room_id"] == assign["room_id"] and refresh["hms_token"] != assign["hms_token"]
        assert assign["token_exp"] < refresh["token_exp"]
        joined = await media_join(hub, refresh["hms_token"])
        assert joined.status_code == 200, joined.text
        assert joined.json()["room_id"] == assign["room_id"]
        await eventually(
            lambda: sample(hub, "proctorhub_token_refreshes_acked_total") >= 1, what="the refresh acked"
        )
    finally:
        holder.stop()


def sample(hub: HubProcess, name: str) -> float:
    for line in hub.metrics_text().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


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
