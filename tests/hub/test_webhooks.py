"""POST /webhooks/100ms on real hubs: who may send, what is refused and why, what is stored, processed,
relayed to another environment, and that nothing accepted is lost when Redis restarts under the hub."""

from __future__ import annotations

import time

import httpx
import pytest
import redis.asyncio as aioredis

from server.hms.tokens import mint_app_token, mint_management_token
from server.recording.intake.envelope import MAX_BODY_BYTES
from tests.conftest import HubFactory
from tests.polling import eventually
from tests.servers import RedisServer, free_port, start_redis
from tests.simulator_support import Receiver, receiving
from tests.webhook_support import AUTH, HEADER, WEBHOOK_SECRET, encode, event, metrics, post

HMS_KEY = "webhook-test-access-key"
HMS_SECRET = "webhook-test-hms-secret-" + "h" * 24


@pytest.fixture
def hub(hub_factory: HubFactory):  # type: ignore[no-untyped-def]
    return hub_factory(HMS_WEBHOOK_SECRET=WEBHOOK_SECRET)


async def flushed(server: RedisServer) -> str:
    client = aioredis.Redis.from_url(server.url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    return server.url


def test_missing_secret_is_401_and_a_wrong_one_403(hub) -> None:  # type: ignore[no-untyped-def]
    missing = post(hub, event(), headers={})
    assert missing.status_code == 401
    assert missing.json() == {"error": {"code": "unauthenticated", "message": f"missing {HEADER} header"}}
    wrong = post(hub, event(), headers={HEADER: WEBHOOK_SECRET + "x"})
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "forbidden"
    assert post(hub, event(), headers={HEADER: ""}).status_code == 403
    assert post(hub, event(), headers={HEADER: "é".encode() * 10}).status_code == 403
    assert post(hub, event()).json() == {"status": "accepted"}
    counts = metrics(hub)
    assert counts['refused{reason="missing_secret"}'] == 1 and counts['refused{reason="bad_secret"}'] == 3
    assert counts["accepted"] == 1 and counts["received"] == 5


def test_allow_list_of_source_networks_behind_a_trusted_proxy(hub_factory: HubFactory) -> None:
    hub = hub_factory(
        HMS_WEBHOOK_SECRET=WEBHOOK_SECRET,
        HMS_WEBHOOK_ALLOW_NETS="10.0.0.0/8, 192.0.2.7",
        HUB_TRUSTED_PROXIES="127.0.0.1, 172.16.0.0/12",
    )
    outside = post(hub, event())
    assert outside.status_code == 403
    assert outside.json() == {"error": {"code": "forbidden", "message": "source address not allowed"}}
    # The test is the loopback proxy: the client is the nearest hop that is not a trusted proxy.
    forwarded = post(hub, event(), headers={**AUTH, "X-Forwarded-For": "10.1.2.3"})
    assert forwarded.status_code == 200, forwarded.text
    through_two = post(hub, event(), headers={**AUTH, "X-Forwarded-For": "192.0.2.7, 172.16.5.5"})
    assert through_two.status_code == 200, through_two.text
    assert post(hub, event(), headers={**AUTH, "X-Forwarded-For": "192.0.2.8"}).status_code == 403
    # what a client writes at the left does not count: the hop our proxy saw is 192.0.2.8
    spoofed = post(hub, event(), headers={**AUTH, "X-Forwarded-For": "10.1.2.3, 192.0.2.8"})
    assert spoofed.status_code == 403
    assert metrics(hub)['refused{reason="not_allowed"}'] == 3


def test_forwarded_for_is_ignored_without_trusted_proxies(hub_factory: HubFactory) -> None:
    """No HUB_TRUSTED_PROXIES: nobody's X-Forwarded-For is believed, not even under uvicorn's
    FORWARDED_ALLOW_IPS=* (the hub turns uvicorn's own proxy handling off)."""
    hub = hub_factory(
        HMS_WEBHOOK_SECRET=WEBHOOK_SECRET, HMS_WEBHOOK_ALLOW_NETS="10.0.0.0/8", FORWARDED_ALLOW_IPS="*"
    )
    forwarded = post(hub, event(), headers={**AUTH, "X-Forwarded-For": "10.1.2.3"})
    assert forwarded.status_code == 403, forwarded.text
    assert metrics(hub)['refused{reason="not_allowed"}'] == 1


def test_allow_list_that_is_not_a_network_stops_start_up(hub_factory: HubFactory) -> None:
    with pytest.raises(RuntimeError, match="HMS_WEBHOOK_ALLOW_NETS"):
        hub_factory(HMS_WEBHOOK_SECRET=WEBHOOK_SECRET, HMS_WEBHOOK_ALLOW_NETS="10.0.0.0/33")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "body is empty"),
        (b"{not json", "body is not JSON"),
        (b"[1, 2]", "body must be a JSON object"),
        (encode({k: v for k, v in event().items() if k != "id"}), "id must be a non-empty string"),
        (encode({**event(), "id": 7}), "id must be a non-empty string"),
        (encode({**event(), "type": ""}), "type must be a non-empty string"),
        (encode({k: v for k, v in event().items() if k != "timestamp"}), "timestamp is missing"),
        (encode({**event(), "timestamp": "yesterday"}), "timestamp must be an RFC 3339 time"),
        (encode({**event(), "data": "room-1"}), "data must be an object"),
        (encode(event("stream.recording.success", size="big")), "data.size must be a number, got 'big'"),
        (encode(event(padding="x" * MAX_BODY_BYTES)), f"body is larger than {MAX_BODY_BYTES} bytes"),
    ],
    ids=[
        "empty",
        "not-json",
        "array",
        "no-id",
        "id-int",
        "no-type",
        "no-ts",
        "bad-ts",
        "data",
        "size",
        "big",
    ],
)
def test_a_body_that_is_not_a_100ms_event_is_400_with_the_reason(hub, body: bytes, reason: str) -> None:  # type: ignore[no-untyped-def]
    answer = post(hub, body)
    assert answer.status_code == 400
    assert answer.json() == {"error": {"code": "invalid_webhook", "message": reason}}


def test_unknown_type_is_200_ignored_and_not_stored(hub) -> None:  # type: ignore[no-untyped-def]
    answer = post(hub, event("track.add.success"))
    assert answer.status_code == 200 and answer.json() == {"status": "ignored"}
    counts = metrics(hub)
    assert counts["ignored"] == 1 and counts["accepted"] == 0


def test_tolerant_of_both_versions_missing_ids_and_numbers_as_strings(hub) -> None:  # type: ignore[no-untyped-def]
    legacy = {**event("recording.success", size="13933649", duration=600), "version": "1.0"}
    del legacy["app_id"]
    assert post(hub, legacy).json() == {"status": "accepted"}
    bare = {k: v for k, v in event().items() if k not in ("version", "app_id", "account_id")}
    assert post(hub, bare).json() == {"status": "accepted"}


async def test_duplicates_are_processed_once_and_foreign_rooms_not_at_all(hub) -> None:  # type: ignore[no-untyped-def]
    twice = event(event_id="dup-1")
    for body in (twice, twice, event(event_id="dup-2"), twice, event(room_name="elsewhere-ev-1")):
        assert post(hub, body).json() == {"status": "accepted"}
    await eventually(lambda: metrics(hub)["backlog"] == 0 and metrics(hub)["foreign"] == 1, what="drained")
    counts = metrics(hub)
    assert counts["accepted"] == 5
    assert counts["duplicates"] == 2
    assert counts["processed"] == 3  # dup-1, dup-2 and the foreign one (counted, not handled)
    assert post(hub, twice).json() == {"status": "accepted"}  # long after: still a duplicate
    await eventually(lambda: metrics(hub)["duplicates"] == 3, what="late duplicate")


async def test_relay_to_another_environment_with_retries(hub_factory: HubFactory) -> None:
    receiver = Receiver(fail_first=1, fail_status=500)
    async with receiving(receiver) as url, httpx.AsyncClient() as http:
        hub = hub_factory(HMS_WEBHOOK_SECRET=WEBHOOK_SECRET, HMS_WEBHOOK_RELAY=f"staging={url}")
        joined = event(room_id="staging-room", room_name="staging-ev9-1")
        recorded = event("stream.recording.success", room_id="staging-room", room_name=None, size=10)
        unknown_room = event("stream.recording.success", room_id="no-such-room", room_name=None)
        for body in (joined, recorded, unknown_room, event(room_name="production-ev-1")):
            answer = await http.post(f"{hub.http}/webhooks/100ms", content=encode(body), headers=AUTH)
            assert answer.json() == {"status": "accepted"}
        await eventually(
            lambda: len(receiver.events()) >= 4, timeout=15, what="4 webhooks"
        )  # each: 500 first, then 200
        assert sorted(r.body["id"] for r in receiver.requests) == sorted(
            [joined["id"]] * 2 + [recorded["id"]] * 2
        )
        assert {r.headers[HEADER.lower()] for r in receiver.requests} == {WEBHOOK_SECRET}
        assert {r.body["id"]: r.body for r in receiver.requests} == {
            joined["id"]: joined,
            recorded["id"]: recorded,
        }
        await eventually(lambda: metrics(hub)["backlog"] == 0, what="drained")
        counts = metrics(hub)
        assert counts['relayed{target="staging"}'] == 2 and counts['relay_errors{target="staging"}'] == 2
        assert counts["foreign"] == 2  # a room 100ms does not know, and one of no configured environment


async def test_a_relay_survives_a_restart_of_the_hub(
    hub_factory: HubFactory, redis_server: RedisServer
) -> None:
    port = free_port()  # the other environment is down for now
    env = {
        "REDIS_URL": await flushed(redis_server),
        "HMS_SIMULATOR": "embedded",  # one node at a time: its own simulator will do
        "HMS_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "HMS_WEBHOOK_RELAY": f"edge=http://127.0.0.1:{port}/hook",
        "HUB_NODE_ID": "relay-node-1",
    }
    first = hub_factory(**env)
    body = event(room_id="edge-room", room_name="edge-ev-1")
    assert post(first, body).json() == {"status": "accepted"}
    await eventually(lambda: metrics(first)['relay_errors{target="edge"}'] >= 1, what="a failed forward")
    first.kill()  # mid-retries
    receiver = Receiver()
    async with receiving(receiver, port):
        second = hub_factory(**env)  # the same node name resumes the entries it held
        await eventually(lambda: len(receiver.events()) >= 1, timeout=15, what="a webhook")
        assert receiver.requests[0].body == body
        await eventually(lambda: metrics(second)['relayed{target="edge"}'] == 1, what="relayed")


def test_a_bad_relay_setting_stops_start_up(hub_factory: HubFactory) -> None:
    with pytest.raises(RuntimeError, match="HMS_WEBHOOK_RELAY"):
        hub_factory(HMS_WEBHOOK_SECRET=WEBHOOK_SECRET, HMS_WEBHOOK_RELAY="staging=ftp://x")


async def test_nothing_accepted_is_lost_when_redis_restarts(hub_factory: HubFactory) -> None:
    server = start_redis(appendonly=True)
    try:
        common = {"REDIS_URL": server.url, "HMS_SIMULATOR": "embedded", "HMS_WEBHOOK_SECRET": WEBHOOK_SECRET}
        intake = hub_factory(**common, HMS_WEBHOOK_WORKERS="0")  # stores, does not process
        before = [event(event_id=f"before-{n}") for n in range(20)]
        assert all(post(intake, body).json() == {"status": "accepted"} for body in before)

        server.stop(keep_data=True)
        down = post(intake, event())
        assert down.status_code == 503 and down.json()["error"]["code"] == "unavailable"
        assert down.headers["Retry-After"] == "1"
        assert httpx.get(f"{intake.http}/healthz").status_code == 200
        assert httpx.get(f"{intake.http}/readyz").status_code == 503

        server = start_redis(server.port, appendonly=True, workdir=server.workdir)
        after = [event(event_id=f"after-{n}") for n in range(5)]
        deadline = time.monotonic() + 15
        while post(intake, after[0]).status_code != 200:
            assert time.monotonic() < deadline, "the hub never stored again"
            time.sleep(0.1)
        assert all(post(intake, body).json() == {"status": "accepted"} for body in after[1:])
        assert intake.proc.poll() is None
        assert metrics(intake)['refused{reason="store_unavailable"}'] >= 1

        worker = hub_factory(**common)
        await eventually(lambda: metrics(worker)["processed"] == 25, timeout=15, what="all processed")
        await eventually(lambda: metrics(worker)["backlog"] == 0, what="drained")
        assert metrics(worker)["duplicates"] == 0

        server.stop(keep_data=True)  # again, under a hub that processes: its inbox waits and comes back
        assert post(worker, event()).status_code == 503
        await eventually(lambda: metrics(worker)["store_errors"] >= 1, what="the inbox noticed")
        server = start_redis(server.port, appendonly=True, workdir=server.workdir)
        await eventually(lambda: post(worker, event(event_id="late")).status_code == 200, what="stored again")
        await eventually(lambda: metrics(worker)["processed"] == 26, timeout=15, what="processed after")
        assert intake.proc.poll() is None and worker.proc.poll() is None
        worker.stop()
        intake.stop()  # while Redis is up
    finally:
        server.stop()


async def test_embedded_simulator_delivers_to_this_hub(hub_factory: HubFactory) -> None:
    hub = hub_factory(HMS_WEBHOOK_SECRET=WEBHOOK_SECRET, HMS_ACCESS_KEY=HMS_KEY, HMS_SECRET=HMS_SECRET)
    manage, _ = mint_management_token(access_key=HMS_KEY, secret=HMS_SECRET, ttl_s=600, now=time.time())
    async with httpx.AsyncClient(base_url=f"{hub.http}/hms-sim") as sim:
        created = await sim.post(
            "/v2/rooms", json={"name": "proctorhub-emb-1"}, headers={"Authorization": f"Bearer {manage}"}
        )
        assert created.status_code == 200, created.text
        app_token = mint_app_token(
            access_key=HMS_KEY,
            secret=HMS_SECRET,
            room_id=created.json()["id"],
            user_id="cand-1",
            role="candidate",
            ttl_s=600,
            now=time.time(),
        ).token
        joined = await sim.post("/media/join", json={"token": app_token, "user_name": "Cand"})
        assert joined.status_code == 200, joined.text
        await eventually(lambda: metrics(hub)["processed"] >= 2, what="session.open and peer.join processed")
        deliveries = (await sim.get("/_sim/webhooks")).json()["deliveries"]
    assert {d["event_type"] for d in deliveries} >= {"session.open.success", "peer.join.success"}
    assert {(d["url"], d["status"], d["outcome"]) for d in deliveries} == {
        ("http://hub.internal/webhooks/100ms", 200, "delivered")
    }
