"""A socket that closes while the store is down is not a ghost: its disconnect is written once the
store is back, dated when the socket closed (before, the user stayed online for the node's life)."""

from __future__ import annotations

import time

import httpx

from tests.client import login, token
from tests.conftest import API_KEY, SECRET, HubFactory, create_event
from tests.polling import eventually
from tests.servers import start_redis


def candidate_record(hub_http: str, event: str, user: str) -> dict[str, object] | None:
    try:
        answer = httpx.get(
            f"{hub_http}/api/v1/events/{event}/candidates/{user}/timeline",
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=5,
        )
    except httpx.HTTPError:
        return None
    return answer.json() if answer.status_code == 200 else None


async def test_a_disconnect_the_store_missed_is_written_when_it_is_back(hub_factory: HubFactory) -> None:
    redis = start_redis(appendonly=True)
    try:
        hub = hub_factory(REDIS_URL=redis.url, HMS_SIMULATOR="embedded", HUB_PRESENCE_GRACE_S="1")
        event = "ghost"
        create_event(hub, event)
        candidate, _ = await login(hub.ws, token(SECRET, "c1", event=event))
        await eventually(
            lambda: (candidate_record(hub.http, event, "c1") or {}).get("intervals", {}).get("present"),
            what="the candidate present",
            interval=0.1,
        )
        redis.stop(keep_data=True)
        closed_at = time.time()
        await candidate.close()
        await eventually(
            lambda: "proctorhub_disconnects_unrecorded 1.0" in hub.metrics_text(),
            what="the disconnect waiting for the store",
            interval=0.1,
        )
        redis = start_redis(redis.port, appendonly=True, workdir=redis.workdir)
        await eventually(
            lambda: "proctorhub_disconnects_unrecorded 0.0" in hub.metrics_text(),
            timeout=15,
            what="the disconnect written once the store is back",
            interval=0.1,
        )

        def left() -> list[list[int | None]] | None:
            present = (candidate_record(hub.http, event, "c1") or {}).get("intervals", {}).get("present")
            return present if present and present[-1][1] is not None else None

        present = await eventually(left, timeout=15, what="the candidate no longer present", interval=0.1)
        # dated when the socket closed, not when the store came back
        assert abs(present[-1][1] / 1000 - closed_at) < 2, (present, closed_at)
    finally:
        redis.stop()
