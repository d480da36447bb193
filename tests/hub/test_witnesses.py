"""Issue 12, "trust no single witness", on a real hub with its 100ms simulator: a page that keeps
claiming video after 100ms saw its peer leave gets its video gap, whether the leave came by webhook
or was read back from the REST API by the reconciler."""

from __future__ import annotations

import time
from collections.abc import Awaitable

import httpx
import orjson
import redis.asyncio as aioredis

from tests.client import HubClient, login, token
from tests.conftest import SECRET, HubFactory, create_event
from tests.polling import eventually
from tests.servers import HubProcess, RedisServer
from tests.sitting import Watcher, add_fault, sit, video_flowing, watcher

THRESHOLD = 1.0
RECONCILE_S = 1.0


async def test_a_page_claiming_video_after_100ms_saw_its_peer_leave_gets_a_gap(
    hub_factory: HubFactory,
) -> None:
    hub = hub_factory(RECORDING_GAP_THRESHOLD_S=str(THRESHOLD))
    event = "wit-leave"
    create_event(hub, event, room_size=5, expected_candidates=5)
    async with httpx.AsyncClient(base_url=hub.http, timeout=30) as media:
        proctor = await watcher(hub, "p1", "proctor", event)
        candidate = await sit(hub, event, "c1", media)
        await eventually(lambda: proctor.rooms, what="the proctor watches the room")
        await video_flowing(media, event, candidate)
        # The peer leaves 100ms (the simulator sends peer.leave.success); the page goes on saying video.
        left = await media.post(f"/hms-sim/media/peers/{candidate.peer_id}/leave")
        left.raise_for_status()
        left_at = time.time()
        await candidate.report(joined=True, video=True)
        opened = await eventually(
            lambda: proctor.opened("video.gap").get("c1"),
            what="a video gap for the page that left 100ms",
        )
        assert opened.data["detail"]["cause"] == "peer_left_100ms"
        assert abs(opened.data["started_at"] / 1000 - left_at) < 1
        # A new join of the same user ends it.
        await candidate.join_again()
        await eventually(lambda: proctor.closed("video.gap").get("c1"), what="the gap closed")
        await proctor.stop()


async def test_a_leave_whose_webhook_was_lost_is_read_back_by_the_reconciler(
    hub_factory: HubFactory,
) -> None:
    hub = hub_factory(RECORDING_GAP_THRESHOLD_S=str(THRESHOLD), RECORDING_RECONCILE_S=str(RECONCILE_S))
    event = "wit-lost"
    create_event(hub, event, room_size=5, expected_candidates=5)
    async with httpx.AsyncClient(base_url=hub.http, timeout=30) as media:
        proctor = await watcher(hub, "p1", "proctor", event)
        stays = await sit(hub, event, "c1", media)
        leaves = await sit(hub, event, "c2", media)
        assert stays.room_id == leaves.room_id  # c1 keeps the session open: no session.close either
        await video_flowing(media, event, leaves)
        await add_fault(media, kind="webhook.lose", user_id="c2", event_type="peer.leave.success")
        left = await media.post(f"/hms-sim/media/peers/{leaves.peer_id}/leave")
        left.raise_for_status()
        await leaves.report(joined=True, video=True)
        opened = await eventually(
            lambda: proctor.opened("video.gap").get("c2"),
            what="a video gap from the reconciled leave",
        )
        assert opened.data["detail"]["cause"] == "peer_left_100ms"
        assert "c1" not in proctor.opened("video.gap")
        await proctor.stop()


async def _candidate(hub: HubProcess, event: str, user: str) -> tuple[HubClient, str]:
    client, _ = await login(hub.ws, token(SECRET, user, "candidate", event))
    assign = await client.expect("room.assign")
    await client.send("ack", {"id": assign["id"]})
    return client, assign["data"]["room_id"]


def _claim(room_id: str, video: bool) -> dict[str, object]:
    return {"room_id": room_id, "joined": True, "video": video, "audio": True}


async def test_a_proctors_page_is_a_second_witness_and_a_claim_it_contradicts_is_disputed(
    hub_factory: HubFactory,
) -> None:
    hub = hub_factory(RECORDING_GAP_THRESHOLD_S=str(THRESHOLD))
    event = "wit-observed"
    create_event(hub, event, room_size=5, expected_candidates=5)
    proctor_socket, _ = await login(hub.ws, token(SECRET, "p1", "proctor", event))
    proctor = Watcher(proctor_socket).start()
    cand, room = await _candidate(hub, event, "c1")
    await cand.send("media.status", _claim(room, True))
    # Only a proctor may say what it sees, and only of a candidate of its event.
    refused = await cand.send("media.observed", {"candidate_id": "c1", "video": False, "at": 1})
    assert await cand.closed_with() == 4403, refused
    again, _ = await _candidate(hub, event, "c1")
    await again.send("media.status", _claim(room, True))
    side, _ = await login(hub.ws, token(SECRET, "p2", "proctor", event))
    asked = await side.send("media.observed", {"candidate_id": "nobody", "video": False, "at": 1})
    answer = await side.expect("error", lambda m: m["re"] == asked)
    assert answer["data"]["code"] == "unknown_candidate"

    now_ms = int(time.time() * 1000)
    await proctor_socket.send("media.observed", {"candidate_id": "c1", "video": False, "at": now_ms})
    disputed = await eventually(
        lambda: proctor.opened("video.disputed").get("c1"), timeout=THRESHOLD + 2, what="a dispute"
    )
    detail = disputed.data["detail"]
    assert detail["reported"] == {"joined": True, "video": True}
    assert detail["observed"] == {"p1": False}
    assert "c1" not in proctor.opened("video.gap")  # the page's own word stands for the gap
    await proctor_socket.send("media.observed", {"candidate_id": "c1", "video": True, "at": now_ms + 1})
    await eventually(lambda: proctor.closed("video.disputed").get("c1"), what="the dispute closed")
    await proctor.stop()


async def test_ten_thousand_media_reports_of_one_candidate_stay_bounded_and_others_are_alerted_in_time(
    hub_factory: HubFactory, redis_server: RedisServer
) -> None:
    refill_s = 1.0
    hub = hub_factory(
        REDIS_URL=redis_server.url,
        HMS_SIMULATOR="embedded",  # one node with its own 100ms simulator (needed with REDIS_URL)
        RECORDING_GAP_THRESHOLD_S=str(THRESHOLD),
        RECORDING_MEDIA_REFILL_S=str(refill_s),
        # The per-socket limit would close the flooding sockets (4429): lift it, the per-user gate holds.
        HUB_RATE_PER_S="100000",
        HUB_RATE_BURST="100000",
    )
    event = "wit-flood"
    create_event(hub, event, room_size=5, expected_candidates=5)
    proctor = await watcher(hub, "p1", "proctor", event)
    honest, honest_room = await _candidate(hub, event, "c2")
    await honest.send("media.status", _claim(honest_room, True))
    flooder, room = await _candidate(hub, event, "c1")
    sockets = [flooder, *[(await _candidate(hub, event, "c1"))[0] for _ in range(3)]]
    frames = 10_000
    rounds = frames // len(sockets)
    for round_ in range(rounds):
        for socket in sockets:  # every socket says the same in a round: the sockets' order never matters
            await socket.send("media.status", _claim(room, round_ % 2 == 0))
    # The last round said "no video": the hub must come to believe it. A ping on each socket, answered
    # after every frame before it was handled, says when the hub has read them all.
    for socket in sockets:
        await socket.send("ping", {})
    for socket in sockets:
        await socket.expect("pong", timeout=60)
    camera_off_at = time.time()
    await honest.send("media.status", _claim(honest_room, False))
    opened = await eventually(
        lambda: proctor.opened("video.gap").get("c2"),
        timeout=THRESHOLD + 2,
        what="the honest candidate's gap, while the other floods",
    )
    assert opened.at - camera_off_at < THRESHOLD + 2

    redis = aioredis.from_url(redis_server.url)
    key = f"ph:sig:{event}:c1"

    async def last_claim() -> dict[str, object] | None:
        claims = [orjson.loads(raw) for raw in await redis.smembers(key)]
        claims = [c for c in claims if c["kind"] == "media"]
        return max(claims, key=lambda c: c["at"]) if claims else None

    try:
        await eventually(
            lambda: _says_no_video(last_claim()), timeout=refill_s * 2 + 2, what="the latest claim kept"
        )
        stored = await redis.scard(key)
        assert stored <= 256, f"{stored} signals kept for one candidate"
    finally:
        await redis.aclose()
    await proctor.stop()


async def _says_no_video(claim: Awaitable[dict[str, object] | None]) -> bool:
    found = await claim
    return found is not None and not found.get("video", False)


async def test_over_the_budget_old_toggles_fold_and_the_timeline_still_tells_gaps(
    hub_factory: HubFactory, redis_server: RedisServer
) -> None:
    budget, keep = 16, 4
    hub = hub_factory(
        REDIS_URL=redis_server.url,
        HMS_SIMULATOR="embedded",  # one node with its own 100ms simulator (needed with REDIS_URL)
        RECORDING_GAP_THRESHOLD_S=str(THRESHOLD),
        RECORDING_MEDIA_BURST="1000",  # every change passes the gate: the budget alone bounds them
        HUB_RATE_BURST="1000",
        RECORDING_SIGNAL_BUDGET=str(budget),
        RECORDING_SIGNAL_KEEP=str(keep),
    )
    event = "wit-fold"
    create_event(hub, event, room_size=5, expected_candidates=5)
    proctor = await watcher(hub, "p1", "proctor", event)
    cand, room = await _candidate(hub, event, "c1")
    for k in range(100):
        await cand.send("media.status", _claim(room, k % 2 == 1))  # ends with video on
    await cand.send("ping", {})
    await cand.expect("pong")
    redis = aioredis.from_url(redis_server.url)
    key = f"ph:sig:{event}:c1"
    try:
        kinds = await eventually(lambda: _kinds(redis, key), what="a fold", timeout=5)
        # One fold of the page's claims, one of its presence (folded with them when old enough).
        assert kinds.count("fold") in (1, 2) and kinds.count("media") <= budget, kinds
    finally:
        await redis.aclose()
    # The timeline read from the fold and the newest toggles still shows video now, and gaps still open.
    assert "c1" not in proctor.opened("video.gap")
    await cand.send("media.status", _claim(room, False))
    opened = await eventually(
        lambda: proctor.opened("video.gap").get("c1"), timeout=THRESHOLD + 2, what="the gap after a fold"
    )
    assert opened.data["detail"]["cause"] == "video_unpublished"
    await proctor.stop()


async def _kinds(redis: aioredis.Redis, key: str) -> list[str] | None:
    kinds = [orjson.loads(raw)["kind"] for raw in await redis.smembers(key)]
    return kinds if "fold" in kinds else None
