"""The event's ACS policy through the real hub and its 100ms simulator, against the in-process platform
(tests/lti_platform.py): the `lti` event field, a gap that was 100ms's turned into extra time, the
event's own choice of alerts, and a proctor's high flag passed on."""

from __future__ import annotations

import time
from typing import Any

import httpx

from server.auth import mint_session
from tests.client import login as ws_login
from tests.conftest import SECRET
from tests.hub import test_lti
from tests.hub.test_lti import HOST, Setup, acs_path, begin, launch
from tests.polling import eventually
from tests.sitting import sit, video_flowing

EVENT_PATH = "/api/v1/events/{}"
hub = test_lti.hub  # the same fixtures: a hub for the module, a platform registered for each test
lti = test_lti.lti


async def launched_event(setup: Setup) -> str:
    page = await launch(setup, await begin(setup))
    assert page.status_code == 200, page.text
    return f"lti-{setup.platform_id}-quiz-7"


async def calls(setup: Setup, event_id: str, candidate: str) -> list[dict[str, Any]]:
    answer = await setup.browser.get(acs_path(event_id, candidate), headers=HOST)
    found: list[dict[str, Any]] = answer.json()["calls"]
    return found


async def video_gap(setup: Setup, event_id: str, state: str, cause: str) -> dict[str, Any] | None:
    alerts = (await setup.browser.get(f"{EVENT_PATH.format(event_id)}/alerts", headers=HOST)).json()
    return next(
        (
            a
            for a in alerts["alerts"]
            if a["kind"] == "video.gap" and a["state"] == state and a["detail"]["cause"] == cause
        ),
        None,
    )


async def test_the_lti_field_is_stored_checked_and_shown_with_the_event(lti: Setup) -> None:
    event_id = await launched_event(lti)
    path = EVENT_PATH.format(event_id)
    assert (await lti.browser.get(path, headers=HOST)).json()["lti"] is None  # every default
    policy = {"flag_alerts": ["video.gap"], "flag_gap_s": 120, "extra_time_causes": []}
    patched = await lti.browser.patch(path, json={"lti": policy}, headers=HOST)
    assert patched.status_code == 200, patched.text
    assert (await lti.browser.get(path, headers=HOST)).json()["lti"] == policy
    for bad, field in [
        ({"flag_gap_s": 0}, "lti.flag_gap_s"),
        ({"flag_alerts": ["proctor.shortage"]}, "lti.flag_alerts"),
        ({"extra": 1}, "lti.extra"),
        ("all", "lti"),
    ]:
        refused = await lti.browser.patch(path, json={"lti": bad}, headers=HOST)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["message"].startswith(f"{field}:"), refused.text
    assert (await lti.browser.patch(path, json={"lti": None}, headers=HOST)).json()["lti"] is None


async def test_a_gap_that_was_100mss_gives_the_attempt_its_seconds_back(lti: Setup) -> None:
    event_id = await launched_event(lti)
    candidate = lti.platform.user["sub"]
    async with httpx.AsyncClient(base_url=lti.hub.http, timeout=30) as media:
        sitting = await sit(lti.hub, event_id, candidate, media)
        await video_flowing(media, event_id, sitting)  # the premise: the page's video flowed first
        # 100ms drops the peer; the page goes on saying it sends video: the gap is 100ms's
        (await media.post(f"/hms-sim/media/peers/{sitting.peer_id}/leave")).raise_for_status()
        await sitting.report(joined=True, video=True)
        opened = await eventually(
            lambda: video_gap(lti, event_id, "open", "peer_left_100ms"), what="100ms's gap open"
        )
        await sitting.join_again()
        back_at = time.time()
        gap = await eventually(
            lambda: video_gap(lti, event_id, "closed", "peer_left_100ms"), what="the gap closed"
        )
        assert gap["alert_id"] == opened["alert_id"]

        async def update() -> dict[str, Any] | None:
            return next((c for c in lti.platform.acs_log if c["action"] == "update"), None)

        sent = await eventually(update, what="the extra time")
    received_at = lti.platform.acs_received_at[lti.platform.acs_log.index(sent)]
    print(f"\nvideo back -> ACS update received: {received_at - back_at:.3f} s")  # a figure, not a check
    seconds = (gap["ended_at"] - gap["started_at"]) / 1000
    assert seconds <= sent["extra_time"] < seconds + 1.01
    assert (sent["reason_code"], sent["user"]["sub"]) == ("video.gap", candidate)
    assert "peer_left_100ms" in sent["reason_msg"]
    assert lti.platform.status[1]["extra_time"] == sent["extra_time"]
    flagged = [
        c for c in lti.platform.acs_log if c["action"] == "flag" and "peer_left_100ms" in c["reason_msg"]
    ]
    assert len(flagged) == 1  # long enough (LTI_ACS_FLAG_GAP_S) to be flagged too, once
    flag_at = lti.platform.acs_received_at[lti.platform.acs_log.index(flagged[0])]
    print(f"gap began -> ACS flag received: {flag_at - gap['started_at'] / 1000:.3f} s (flag gap 0.5 s)")
    settled = {("flag", "policy", "done"), ("update", "policy", "done")}

    async def stored() -> set[tuple[str, str, str]] | None:
        # the platform logs a call when it gets it; the hub marks it done when the answer is back
        held = {(c["action"], c["by"], c["state"]) for c in await calls(lti, event_id, candidate)}
        return held if held == settled else None

    await eventually(stored, what="both calls stored as done")
    assert [c["action"] for c in lti.platform.acs_log].count("update") == 1


async def test_the_events_policy_decides_what_is_sent(lti: Setup) -> None:
    """No alert flagged, and (for this event) even the candidate's own camera gives extra time."""
    event_id = await launched_event(lti)
    candidate = lti.platform.user["sub"]
    policy = {"flag_alerts": [], "extra_time_causes": ["video_unpublished"]}
    patched = await lti.browser.patch(EVENT_PATH.format(event_id), json={"lti": policy}, headers=HOST)
    assert patched.status_code == 200, patched.text
    client, _hello = await ws_login(
        lti.hub.ws,
        mint_session(SECRET, user_id=candidate, event_id=event_id, role="candidate", now=time.time()),
    )
    assign = await client.expect("room.assign")
    await client.send("ack", {"id": assign["id"]})
    room = assign["data"]["room_id"]
    await client.send("media.status", {"room_id": room, "joined": True, "video": True, "audio": True})
    await client.send("media.status", {"room_id": room, "joined": True, "video": False, "audio": True})
    await eventually(lambda: video_gap(lti, event_id, "open", "video_unpublished"), what="the gap open")
    await client.send("media.status", {"room_id": room, "joined": True, "video": True, "audio": True})
    await eventually(lambda: video_gap(lti, event_id, "closed", "video_unpublished"), what="gap closed")
    [sent] = await eventually(lambda: lti.platform.acs_log, what="the extra time")
    assert sent["action"] == "update" and sent["extra_time"] >= 1
    assert "video_unpublished" in sent["reason_msg"]


async def test_a_proctors_high_flag_goes_to_the_platform_and_a_low_one_does_not(lti: Setup) -> None:
    event_id = await launched_event(lti)
    candidate = lti.platform.user["sub"]
    no_alerts = {"lti": {"flag_alerts": []}}  # the candidate sends no video: its gap is not flagged
    assert (await lti.browser.patch(EVENT_PATH.format(event_id), json=no_alerts, headers=HOST)).is_success
    await ws_login(
        lti.hub.ws,
        mint_session(SECRET, user_id=candidate, event_id=event_id, role="candidate", now=time.time()),
    )
    proctor, _ = await ws_login(
        lti.hub.ws, mint_session(SECRET, user_id="pat", event_id=event_id, role="proctor", now=time.time())
    )
    for severity, note in (("low", "looked away"), ("high", "a second person in the room")):
        await proctor.send("flag", {"candidate_id": candidate, "note": note, "severity": severity})
        await proctor.expect("flag.added", lambda m, note=note: m["data"]["note"] == note)
    [sent] = await eventually(lambda: lti.platform.acs_log, what="the proctor's flag on the platform")
    assert (sent["action"], sent["reason_code"], sent["incident_severity"]) == ("flag", "proctor.flag", 0.9)
    assert "a second person in the room" in sent["reason_msg"] and "pat" in sent["reason_msg"]
    assert [c["by"] for c in await calls(lti, event_id, candidate)] == ["policy"]
