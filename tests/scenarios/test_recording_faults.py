"""600 candidates sit an exam on the simulator while it drops 14 recordings, fails 3 and 20 cameras
go dark for 15-40 s: every fault is alerted to the right proctor and the admin, in time, and no
healthy candidate gets an alert."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import httpx

from tests.conftest import HubFactory, create_event
from tests.polling import eventually
from tests.sitting import add_fault, sit, watcher

CANDIDATES = 600
ROOM_SIZE = 10
DROPPED, FAILED, DARK = 14, 3, 20
THRESHOLD = 10.0
CANDIDATE_KINDS = {"video.gap", "recording.gap", "recording.failed", "recording.missing"}
MEDIA_CONNECTIONS = 50
SEATING = 25
"""Candidates between logging in and reporting their video, at most: fewer than the media client's
connections, so none waits in its pool. A candidate's sitting starts when it is online, so one kept
waiting for the media plane (100 at once on 50 connections: up to 14 s on a loaded machine, while the
hub answered each request in under 0.3 s) is rightly alerted a video gap (cause peer_left) from its
login to its first media.status."""


async def test_every_injected_fault_is_alerted_in_time_and_no_healthy_candidate_is(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    hub = hub_factory(
        ARCHIVE_DIR=str(tmp_path / "archive"),
        RECORDING_GAP_THRESHOLD_S=str(THRESHOLD),
        RECORDING_DEADLINE_S="3",
        HMS_SIM_RECORDING_DELAY_S="0.5",
        HUB_RATE_BURST="100",
    )
    event = "rec-600"
    rooms = CANDIDATES // ROOM_SIZE
    create_event(hub, event, room_size=ROOM_SIZE, proctor_load=ROOM_SIZE, expected_candidates=CANDIDATES)
    rng = random.Random(600)
    ids = [f"cand-{i:03d}" for i in range(CANDIDATES)]
    picked = rng.sample(ids, DROPPED + FAILED)
    dropped, failed = set(picked[:DROPPED]), set(picked[DROPPED:])
    dark = set(rng.sample(ids, DARK))

    # Idle connections are dropped by the client (2 s) before uvicorn's keep-alive (5 s) closes them: the
    # cameras stay dark 15-40 s, and a pooled connection the server closed as it was reused was a
    # ReadError at `finish` (seen once under load).
    limits = httpx.Limits(max_connections=MEDIA_CONNECTIONS, keepalive_expiry=2)
    async with httpx.AsyncClient(base_url=hub.http, timeout=60, limits=limits) as media:
        for user_id in dropped:
            await add_fault(media, kind="recording.drop", user_id=user_id, count=1)
        for user_id in failed:
            await add_fault(media, kind="recording.fail", user_id=user_id, count=1)
        admin = await watcher(hub, "admin-1", "admin", event)
        proctors = [await watcher(hub, f"proctor-{i:02d}", "proctor", event) for i in range(rooms)]
        gate = asyncio.Semaphore(SEATING)

        async def seated(user_id: str):  # type: ignore[no-untyped-def]
            async with gate:
                return await sit(hub, event, user_id, media)

        candidates = {c.user_id: c for c in await asyncio.gather(*(seated(u) for u in ids))}
        await eventually(
            lambda: all(p.rooms for p in proctors), timeout=30, what="every proctor watches a room"
        )
        watched = {id(p): set(p.rooms) for p in proctors}  # rooms close (and proctors move) at the end

        async def go_dark(user_id: str) -> None:
            candidate = candidates[user_id]
            await asyncio.sleep(rng.uniform(0, 3))
            await candidate.camera(False)
            await asyncio.sleep(rng.uniform(15, 40))
            await candidate.camera(True)

        await asyncio.gather(*(go_dark(u) for u in dark))
        await asyncio.gather(*(c.finish() for c in candidates.values()))

        def complete() -> bool:
            return (
                len(admin.opened("recording.missing")) >= DROPPED
                and len(admin.opened("recording.failed")) >= FAILED
            )

        await eventually(complete, timeout=60, what="the missing and failed recordings are alerted")
        await asyncio.sleep(2)  # anything else that would come (a false alert) has time to arrive

    by_kind = {kind: set(admin.opened(kind)) for kind in CANDIDATE_KINDS}
    assert by_kind["video.gap"] == dark
    assert by_kind["recording.missing"] == dropped
    assert by_kind["recording.failed"] == failed
    assert by_kind["recording.gap"] == set()
    alerted = {r.data["candidate_id"] for r in admin.alerts if r.data["kind"] in CANDIDATE_KINDS}
    assert alerted == dark | dropped | failed, "a healthy candidate got an alert"

    delays = sorted(r.at - candidates[u].camera_off_at for u, r in admin.opened("video.gap").items())  # type: ignore[operator]
    print(f"video.gap alerted {min(delays):.2f}-{max(delays):.2f} s after the camera went off")
    for user_id, received in admin.opened("video.gap").items():
        off_at = candidates[user_id].camera_off_at
        assert off_at is not None
        assert received.at - off_at <= THRESHOLD + 2, (user_id, received.at - off_at)
        assert abs(received.data["started_at"] / 1000 - off_at) < 1
        assert received.data["detail"]["cause"] == "video_unpublished"
        closed = [
            r
            for r in admin.alerts
            if r.data["alert_id"] == received.data["alert_id"] and r.data["state"] == "closed"
        ]
        assert closed, f"the video gap of {user_id} was never closed"

    # Each video gap reached the proctor watching the candidate's room, and no other proctor.
    for proctor in proctors:
        mine = {u for u, c in candidates.items() if c.room_id in watched[id(proctor)]}
        assert set(proctor.opened("video.gap")) == mine & dark
