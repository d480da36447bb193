"""The recording monitor on a real hub: a camera lost and back, alerts to the right people, state sync,
the timeline and the report over HTTP."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.client import HubClient, login, token
from tests.conftest import API_KEY, SECRET, HubFactory, create_event
from tests.servers import HubProcess, RedisServer

AUTH = {"Authorization": f"Bearer {API_KEY}"}
THRESHOLD = 1.0


@pytest.fixture(scope="module")
def hub(request: pytest.FixtureRequest) -> Iterator[HubProcess]:
    from tests.servers import start_hub

    process = start_hub(
        {
            "HUB_SECRET": SECRET,
            "HUB_API_KEY": API_KEY,
            "LOG_LEVEL": "WARNING",
            "HUB_PRESENCE_GRACE_S": "1",
            "RECORDING_GAP_THRESHOLD_S": str(THRESHOLD),
        }
    )
    yield process
    process.stop()


async def seated(
    hub: HubProcess, user: str, event: str, role: str = "candidate"
) -> tuple[HubClient, str | None]:
    """Logged in and assigned; the candidate's room (None for a proctor)."""
    client, _ = await login(hub.ws, token(SECRET, user, role, event, name=f"Name {user}"))
    assign = await client.expect("room.assign")
    await client.send("ack", {"id": assign["id"]})
    data = assign["data"]
    return client, data.get("room_id")


async def watching(proctor: HubClient, candidate_id: str) -> None:
    """Until the proctor's roster lists the candidate. A proctor that joined before any candidate
    gets a room only after the first one's seat; until then the candidate's changes reach it in
    that room's roster, not as `candidate.status`."""

    def listed(roster: dict[str, Any]) -> bool:
        return any(c["candidate_id"] == candidate_id for c in roster["data"]["candidates"])

    await proctor.expect("roster", listed)


async def camera(client: HubClient, room_id: str | None, on: bool) -> None:
    await client.send("media.status", {"room_id": room_id, "joined": True, "video": on, "audio": True})


def is_alert(kind: str, state: str, candidate: str) -> Any:
    return lambda m: (
        m["data"]["kind"] == kind and m["data"]["state"] == state and m["data"]["candidate_id"] == candidate
    )


async def no_alert(client: HubClient, where: Any, seconds: float) -> None:
    try:
        found = await client.expect("alert", where, timeout=seconds)
    except (AssertionError, TimeoutError):
        return
    raise AssertionError(f"unexpected alert {found}")


def get(hub: HubProcess, path: str, **params: str) -> httpx.Response:
    return httpx.get(f"{hub.http}{path}", headers=AUTH, params=params, timeout=10)


async def test_a_lost_camera_is_alerted_to_the_proctor_and_admin_after_the_threshold_and_closed(
    hub: HubProcess,
) -> None:
    event = "mon-cam"
    create_event(hub, event, room_size=5, expected_candidates=5)
    proctor, _ = await seated(hub, "p1", event, "proctor")
    admin, _ = await login(hub.ws, token(SECRET, "a1", "admin", event))
    cand, room = await seated(hub, "c1", event)
    await watching(proctor, "c1")
    await camera(cand, room, True)
    status = await proctor.expect(
        "candidate.status", lambda m: m["data"]["candidate_id"] == "c1" and m["data"]["recording"] == "on"
    )
    assert status["data"]["open_alerts"] == 0

    off_at = time.time()
    await camera(cand, room, False)
    opened = await proctor.expect("alert", is_alert("video.gap", "open", "c1"), timeout=THRESHOLD + 5)
    seen_after = time.time() - off_at
    assert seen_after >= THRESHOLD - 0.2
    data = opened["data"]
    assert data["room_id"] == room and data["detail"]["cause"] == "video_unpublished"
    assert data["ended_at"] is None and abs(data["started_at"] / 1000 - off_at) < 1
    await admin.expect("alert", is_alert("video.gap", "open", "c1"))
    status = await proctor.expect(
        "candidate.status", lambda m: m["data"]["candidate_id"] == "c1" and m["data"]["open_alerts"] == 1
    )
    assert status["data"]["recording"] == "off"

    # A proctor who connects again gets the open alert in its state sync, after its roster.
    again, _ = await seated(hub, "p1", event, "proctor")
    await again.expect("roster")
    synced = await again.expect("alert", timeout=2)
    assert synced["data"]["alert_id"] == data["alert_id"]

    await camera(cand, room, True)
    closed = await proctor.expect("alert", is_alert("video.gap", "closed", "c1"))
    assert closed["data"]["alert_id"] == data["alert_id"] and closed["data"]["ended_at"] is not None
    await proctor.expect(
        "candidate.status", lambda m: m["data"]["candidate_id"] == "c1" and m["data"]["open_alerts"] == 0
    )

    listed = get(hub, f"/api/v1/events/{event}/alerts").json()["alerts"]
    assert [(a["alert_id"], a["state"]) for a in listed] == [(data["alert_id"], "closed")]


async def test_a_blip_shorter_than_the_threshold_is_not_alerted(hub: HubProcess) -> None:
    event = "mon-blip"
    create_event(hub, event, room_size=5, expected_candidates=5)
    proctor, _ = await seated(hub, "p1", event, "proctor")
    cand, room = await seated(hub, "c1", event)
    await camera(cand, room, True)
    await camera(cand, room, False)
    await camera(cand, room, True)
    await no_alert(proctor, lambda m: m["data"]["kind"] == "video.gap", THRESHOLD + 1.5)


async def test_alerts_go_to_the_proctors_of_the_candidates_room_only(hub_factory: HubFactory) -> None:
    hub = hub_factory(RECORDING_GAP_THRESHOLD_S=str(THRESHOLD))
    event = "mon-rooms"
    create_event(hub, event, room_size=1, proctor_load=1, expected_candidates=2)
    p1, _ = await seated(hub, "p1", event, "proctor")
    p2, _ = await seated(hub, "p2", event, "proctor")
    c1, room1 = await seated(hub, "c1", event)
    c2, room2 = await seated(hub, "c2", event)
    assert room1 != room2
    rooms = get(hub, f"/api/v1/events/{event}/rooms").json()["rooms"]
    watcher = {p for r in rooms if r["room_id"] == room1 for p in r["proctors"]}
    assert len(watcher) == 1
    mine, other = (p1, p2) if watcher == {"p1"} else (p2, p1)
    await camera(c1, room1, True)
    await camera(c2, room2, True)
    await camera(c1, room1, False)
    await mine.expect("alert", is_alert("video.gap", "open", "c1"), timeout=THRESHOLD + 5)
    await no_alert(other, lambda m: m["data"]["candidate_id"] == "c1", 1)


async def test_a_lost_socket_is_a_gap_with_its_cause_and_shows_in_the_timeline_and_report(
    hub: HubProcess,
) -> None:
    event = "mon-socket"
    create_event(hub, event, room_size=5, expected_candidates=5)
    proctor, _ = await seated(hub, "p1", event, "proctor")
    cand, room = await seated(hub, "c1", event)
    await watching(proctor, "c1")
    await camera(cand, room, True)
    await proctor.expect("candidate.status", lambda m: m["data"]["recording"] == "on")
    await cand.close()
    opened = await proctor.expect("alert", is_alert("video.gap", "open", "c1"), timeout=THRESHOLD + 5)
    assert opened["data"]["detail"]["cause"] == "socket_lost"
    back, room_again = await seated(hub, "c1", event)
    assert room_again == room
    await camera(back, room, True)
    await proctor.expect("alert", is_alert("video.gap", "closed", "c1"))

    timeline = get(hub, f"/api/v1/events/{event}/candidates/c1/timeline").json()
    assert timeline["name"] == "Name c1" and timeline["threshold_s"] == THRESHOLD
    assert len(timeline["intervals"]["present"]) == 2
    assert len(timeline["intervals"]["video"]) == 2
    (gap,) = timeline["gaps"]
    assert (gap["kind"], gap["cause"], gap["alert_id"]) == (
        "video.gap",
        "socket_lost",
        opened["data"]["alert_id"],
    )
    assert get(hub, f"/api/v1/events/{event}/candidates/nobody/timeline").status_code == 404

    report = get(hub, f"/api/v1/events/{event}/report").json()
    (row,) = report["candidates"]
    assert row["candidate_id"] == "c1" and row["gaps"] == 1 and row["expected_minutes"] > 0
    rows = list(csv.DictReader(io.StringIO(get(hub, f"/api/v1/events/{event}/report", format="csv").text)))
    assert rows[0]["candidate_id"] == "c1" and rows[0]["gaps"] == "1"
    assert get(hub, f"/api/v1/events/{event}/report", format="xml").status_code == 400
    assert httpx.get(f"{hub.http}/api/v1/events/{event}/report", timeout=5).status_code == 401


async def test_a_gap_seen_on_one_node_is_alerted_to_a_proctor_on_another(
    hub_factory: HubFactory, redis_server: RedisServer
) -> None:
    common = {
        "REDIS_URL": redis_server.url,
        "HMS_SIMULATOR": "embedded",  # each node its own 100ms: the gap comes from the hub's reports
        "RECORDING_GAP_THRESHOLD_S": str(THRESHOLD),
    }
    node_a = hub_factory(HUB_NODE_ID="rec-a", **common)
    node_b = hub_factory(HUB_NODE_ID="rec-b", **common)
    event = "mon-two-nodes"
    create_event(node_a, event, room_size=5, expected_candidates=5)
    proctor, _ = await seated(node_a, "p1", event, "proctor")
    cand, room = await seated(node_b, "c1", event)
    await camera(cand, room, True)
    await camera(cand, room, False)
    opened = await proctor.expect("alert", is_alert("video.gap", "open", "c1"), timeout=THRESHOLD + 5)
    await camera(cand, room, True)
    closed = await proctor.expect("alert", is_alert("video.gap", "closed", "c1"))
    assert closed["data"]["alert_id"] == opened["data"]["alert_id"]
    # Each transition was published once although both nodes run due checks.
    await no_alert(proctor, lambda m: m["data"]["candidate_id"] == "c1", 1.5)
    alerts = get(node_b, f"/api/v1/events/{event}/alerts").json()["alerts"]
    assert [a["state"] for a in alerts] == ["closed"]
