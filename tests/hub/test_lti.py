"""LTI Proctoring Services through the real hub on a port, against an in-process platform
(tests/lti_platform.py): registration, login, launch, LtiStartAssessment verified by the platform,
LtiEndAssessment, and the launches a tool must refuse."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from server.auth import mint_session, verify_session
from server.lti.messages import AP, LTI
from tests.client import login as ws_login
from tests.conftest import API_KEY, SECRET, HubFactory, flush
from tests.lti_platform import Platform
from tests.polling import eventually
from tests.servers import HubProcess, RedisServer, start_hub
from tests.simulator_support import serve

PLATFORMS = "/api/v1/lti/platforms"
HOST = {"Authorization": f"Bearer {API_KEY}"}


@dataclass
class Setup:
    hub: HubProcess
    platform: Platform
    platform_id: str
    browser: httpx.AsyncClient
    """The candidate's browser: keeps the hub's cookies between login and launch."""


@pytest.fixture(scope="module")
def hub() -> Iterator[HubProcess]:
    """One hub for the module: each test registers its own platform (its own issuer: a new port)."""
    process = start_hub(
        {
            "HUB_SECRET": SECRET,
            "HUB_API_KEY": API_KEY,
            "LOG_LEVEL": "WARNING",
            "RECORDING_GAP_THRESHOLD_S": "0.5",
            "LTI_ACS_FLAG_GAP_S": "0.5",
            "LTI_ACS_RETRY_S": "1",
        }
    )
    yield process
    process.stop()


@pytest.fixture
async def lti(hub: HubProcess) -> AsyncIterator[Setup]:
    platform = Platform()
    async with serve(platform.app) as base, httpx.AsyncClient(base_url=hub.http, timeout=10) as browser:
        platform.base = base
        body = await platform.register(hub.http, API_KEY)
        yield Setup(hub, platform, body["platform_id"], browser)


async def begin(setup: Setup, **params: str) -> dict[str, str]:
    """The platform starts a login; the hub redirects to its auth URL; the platform answers the form."""
    response = await setup.browser.get("/lti/login", params=setup.platform.login_params(**params))
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(f"{setup.platform.base}/auth?")
    async with httpx.AsyncClient() as lms:
        answer = await lms.get(location)
    assert answer.status_code == 200, answer.text
    return dict(setup.platform.last_form)


async def launch(
    setup: Setup, form: dict[str, str], browser: httpx.AsyncClient | None = None
) -> httpx.Response:
    return await (browser or setup.browser).post("/lti/launch", data=form)


def session_of(page: httpx.Response) -> str:
    match = re.search(r'<meta name="ph-session" content="([^"]+)">', page.text)
    assert match, page.text
    return match.group(1)


def assert_refused(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "Traceback" not in response.text
    assert words in response.text, response.text


# registration


async def test_registration_is_listed_read_and_deleted(lti: Setup) -> None:
    http = lti.browser
    listed = (await http.get(PLATFORMS, headers=HOST)).json()["platforms"]
    assert [p["platform_id"] for p in listed if p["issuer"] == lti.platform.issuer] == [lti.platform_id]
    one = (await http.get(f"{PLATFORMS}/{lti.platform_id}", headers=HOST)).json()
    assert one["issuer"] == lti.platform.issuer
    assert one["deployment_ids"] == [lti.platform.deployment_id]
    assert one["event_defaults"] == {"room_size": 4, "token_ttl_s": 600}
    assert one["tool"] == {
        "login_url": f"{lti.hub.http}/lti/login",
        "launch_url": f"{lti.hub.http}/lti/launch",
        "jwks_url": f"{lti.hub.http}/lti/jwks",
    }
    again = await http.post(PLATFORMS, json=lti.platform.registration(), headers=HOST)
    assert again.status_code == 409, again.text
    assert (await http.delete(f"{PLATFORMS}/{lti.platform_id}", headers=HOST)).status_code == 204
    gone = await http.get(f"{PLATFORMS}/{lti.platform_id}", headers=HOST)
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"jwks_url": "ftp://lms/jwks"}, "jwks_url"),
        ({"deployment_ids": []}, "deployment_ids"),
        ({"client_id": 7}, "client_id"),
        ({"event_defaults": {"room_size": 0}}, "event_defaults.room_size"),
        ({"event_defaults": {"event_id": "x"}}, "event_defaults.event_id"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_registrations_name_the_field(lti: Setup, change: dict[str, Any], field: str) -> None:
    response = await lti.browser.post(PLATFORMS, json={**lti.platform.registration(), **change}, headers=HOST)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"].startswith(f"{field}:")


async def test_registration_needs_the_api_key_or_an_admin_of_every_event(lti: Setup) -> None:
    assert (await lti.browser.post(PLATFORMS, json=lti.platform.registration())).status_code == 401
    admin_a = mint_session(SECRET, user_id="a", event_id="A", role="admin", now=time.time())
    refused = await lti.browser.get(PLATFORMS, headers={"Authorization": f"Bearer {admin_a}"})
    assert refused.status_code == 403


async def test_jwks_publishes_the_tool_key(lti: Setup) -> None:
    keys = (await lti.browser.get("/lti/jwks")).json()["keys"]
    assert len(keys) == 1
    assert keys[0]["kty"] == "RSA" and keys[0]["alg"] == "RS256" and keys[0]["kid"]
    assert "d" not in keys[0]


# the flow


async def test_a_launch_runs_to_a_start_assessment_the_platform_accepts(lti: Setup) -> None:
    lti.platform.attempt_number = "2"  # the reference platform sends a string
    response = await lti.browser.get("/lti/login", params=lti.platform.login_params())
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert {k: v[0] for k, v in query.items() if k not in ("state", "nonce")} == {
        "scope": "openid",
        "response_type": "id_token",
        "response_mode": "form_post",
        "prompt": "none",
        "client_id": lti.platform.client_id,
        "redirect_uri": lti.platform.tool_launch_url,
        "login_hint": "hint-student-42",
        "lti_message_hint": "message-hint-1",
    }
    state = query["state"][0]
    cookie = response.headers["set-cookie"]
    assert f"ph_lti_{state}=" in cookie and "HttpOnly" in cookie and "Path=/lti/" in cookie

    form = await begin(lti)
    page = await launch(lti, form)
    assert page.status_code == 200, page.text
    assert "form-action 'self' " + lti.platform.base in page.headers["content-security-policy"]
    token = session_of(page)
    session = verify_session(token, SECRET, now=time.time())
    event_id = f"lti-{lti.platform_id}-quiz-7"
    assert (session.event_id, session.user_id, session.role, session.name) == (
        event_id,
        "student-42",
        "candidate",
        "Ada Lovelace",
    )
    event = (await lti.browser.get(f"/api/v1/events/{event_id}", headers=HOST)).json()
    assert (event["name"], event["room_size"], event["token_ttl_s"]) == ("Algebra final", 4, 600)

    minted = await lti.browser.post(
        "/lti/start-assessment", json={"verified": True}, headers={"Authorization": f"Bearer {token}"}
    )
    assert minted.status_code == 200, minted.text
    body = minted.json()
    assert body["url"] == f"{lti.platform.base}/start_assessment"
    async with httpx.AsyncClient() as browser:
        accepted = await browser.post(body["url"], data={"JWT": body["jwt"]})
    assert accepted.status_code == 200, lti.platform.refused
    claims = lti.platform.started[-1]
    assert claims["aud"] == lti.platform.issuer and claims["iss"] == lti.platform.client_id
    assert claims[AP + "attempt_number"] == 2
    assert claims[AP + "session_data"] == lti.platform.session_data
    assert claims[LTI + "resource_link"] == lti.platform.resource_link
    assert claims[AP + "end_assessment_return"] is True
    assert claims[AP + "verified_user"] == {"given_name": "Ada", "family_name": "Lovelace"}


async def test_end_assessment_finishes_the_candidate(lti: Setup) -> None:
    page = await launch(lti, await begin(lti))
    token = session_of(page)
    event_id = f"lti-{lti.platform_id}-quiz-7"
    _client, _hello = await ws_login(lti.hub.ws, token)

    async def counted(presence: str) -> bool:
        event = (await lti.browser.get(f"/api/v1/events/{event_id}", headers=HOST)).json()
        return bool(event["counts"][presence] == 1)

    await eventually(lambda: counted("online"), what="the candidate online")
    lti.platform.message_type = "LtiEndAssessment"
    ended = await launch(lti, await begin(lti))
    assert ended.status_code == 200, ended.text
    assert "has ended" in ended.text
    await eventually(lambda: counted("finished"), what="the candidate finished")
    refused = await lti.browser.post("/lti/start-assessment", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 404  # the attempt is over


# refusals


async def test_a_token_signed_with_an_unpublished_key_is_refused(lti: Setup) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    lti.platform.sign_with = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    lti.platform.next_kid = "not-published"
    assert_refused(await launch(lti, await begin(lti)), 401, "(kid)")
    lti.platform.next_kid = None  # the published kid, the wrong key
    assert_refused(await launch(lti, await begin(lti)), 401, "signature")


async def test_a_key_the_platform_rotated_to_is_fetched(lti: Setup) -> None:
    """The hub first fetches the JWKS at the first launch, so a key published before it is found."""
    lti.platform.rotate()
    assert (await launch(lti, await begin(lti))).status_code == 200


async def test_an_expired_token_is_refused(lti: Setup) -> None:
    past = int(time.time()) - 3600
    lti.platform.next_claims = {"iat": past - 300, "exp": past}
    assert_refused(await launch(lti, await begin(lti)), 401, "expired")


async def test_a_replayed_launch_is_refused(lti: Setup) -> None:
    form = await begin(lti)
    assert (await launch(lti, form)).status_code == 200
    assert_refused(await launch(lti, form), 401, "used already")


async def test_a_state_from_another_browser_is_refused(lti: Setup) -> None:
    form = await begin(lti)
    async with httpx.AsyncClient(base_url=lti.hub.http) as other:
        assert_refused(await launch(lti, form, browser=other), 401, "this browser")


async def test_an_unregistered_deployment_is_refused(lti: Setup) -> None:
    assert_refused(
        await lti.browser.get("/lti/login", params=lti.platform.login_params(lti_deployment_id="other")),
        403,
        "deployment",
    )
    lti.platform.next_claims = {LTI + "deployment_id": "other"}
    assert_refused(await launch(lti, await begin(lti)), 403, "deployment")


@pytest.mark.parametrize(
    ("claims", "words"),
    [
        ({"aud": "someone-else"}, "(aud)"),
        ({"aud": ["proctorhub-tool", "someone-else"]}, "(azp)"),
        ({"azp": "someone-else"}, "(azp)"),
        ({"nonce": "another"}, "(nonce)"),
        ({LTI + "message_type": "LtiResourceLinkRequest"}, "proctoring launches"),
        ({LTI + "version": "1.1"}, "1.3.0"),
        ({AP + "attempt_number": "first"}, "attempt number"),
        ({AP + "start_assessment_url": None}, "start assessment URL"),
        ({AP + "session_data": None}, "session data"),
        ({LTI + "resource_link": {"title": "no id"}}, "resource link"),
    ],
)
async def test_launches_with_bad_claims_are_refused(lti: Setup, claims: dict[str, Any], words: str) -> None:
    lti.platform.next_claims = claims
    response = await launch(lti, await begin(lti))
    assert response.status_code in (400, 401), response.text
    assert_refused(response, response.status_code, words)


async def test_a_launch_for_another_address_is_refused(lti: Setup) -> None:
    elsewhere = "https://elsewhere.example/lti/launch"
    response = await lti.browser.get(
        "/lti/login", params=lti.platform.login_params(target_link_uri=elsewhere)
    )
    assert_refused(response, 400, "meant for another address")
    assert elsewhere in response.text and lti.platform.tool_launch_url in response.text
    routed = lti.platform.tool_launch_url + "/?placement=proctoring"  # a platform's routing hint
    assert (
        await lti.browser.get("/lti/login", params=lti.platform.login_params(target_link_uri=routed))
    ).status_code == 302
    lti.platform.next_claims = {LTI + "target_link_uri": elsewhere}
    assert_refused(await launch(lti, await begin(lti)), 400, "(target_link_uri)")


async def test_an_audience_list_with_our_azp_is_accepted(lti: Setup) -> None:
    lti.platform.next_claims = {"aud": ["proctorhub-tool", "someone-else"], "azp": "proctorhub-tool"}
    assert (await launch(lti, await begin(lti))).status_code == 200


async def test_a_login_from_an_unknown_issuer_is_refused(lti: Setup) -> None:
    response = await lti.browser.get(
        "/lti/login", params=lti.platform.login_params(iss="https://other.example")
    )
    assert_refused(response, 403, "not registered")
    assert_refused(await lti.browser.post("/lti/launch", data={"state": "x"}), 400, "no id_token")
    assert_refused(
        await lti.browser.post("/lti/launch", data={"id_token": "x", "state": "x"}), 401, "(state)"
    )


# Assessment Control Service


async def launched(setup: Setup) -> tuple[str, str]:
    """A launched attempt: (event id, candidate id)."""
    page = await launch(setup, await begin(setup))
    assert page.status_code == 200, page.text
    return f"lti-{setup.platform_id}-quiz-7", setup.platform.user["sub"]


def acs_path(event_id: str, candidate_id: str) -> str:
    return f"/api/v1/events/{event_id}/candidates/{candidate_id}/acs"


async def test_a_flag_reaches_the_platform_and_is_kept_with_its_answer(lti: Setup) -> None:
    event_id, candidate = await launched(lti)
    proctor = mint_session(SECRET, user_id="pat", event_id=event_id, role="proctor", now=time.time())
    wanted = {
        "action": "flag",
        "reason_code": "recording.missing",
        "incident_severity": 0.8,
        "reason_msg": "gap",
    }
    response = await lti.browser.post(
        acs_path(event_id, candidate), json=wanted, headers={"Authorization": f"Bearer {proctor}"}
    )
    assert response.status_code == 200, response.text
    call = response.json()
    assert (call["state"], call["answer"], call["by"], call["tries"]) == (
        "done",
        {"status": "running"},
        "pat",
        1,
    )
    sent = lti.platform.acs_log[-1]
    assert sent["user"] == {"iss": lti.platform.issuer, "sub": candidate}
    assert sent["resource_link"] == lti.platform.resource_link
    assert (sent["attempt_number"], sent["action"], sent["reason_code"], sent["incident_severity"]) == (
        1,
        "flag",
        "recording.missing",
        0.8,
    )
    assert sent["incident_time"].endswith("+00:00")
    extra = await lti.browser.post(
        acs_path(event_id, candidate), json={"action": "update", "extra_time": 90}, headers=HOST
    )
    assert extra.json()["answer"] == {"status": "running", "extra_time": 90}
    listed = (await lti.browser.get(acs_path(event_id, candidate), headers=HOST)).json()["calls"]
    assert [(c["action"], c["state"]) for c in listed] == [("flag", "done"), ("update", "done")]
    assert len(lti.platform.tokens) == 1  # the token is reused


async def test_an_action_the_launch_did_not_offer_is_not_sent(lti: Setup) -> None:
    lti.platform.acs_actions = ["flag"]
    event_id, candidate = await launched(lti)
    response = await lti.browser.post(
        acs_path(event_id, candidate), json={"action": "terminate"}, headers=HOST
    )
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "not_offered"
    assert lti.platform.acs_log == []
    bad = await lti.browser.post(acs_path(event_id, candidate), json={"action": "explode"}, headers=HOST)
    assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("action:")


async def test_a_token_without_the_acs_scope_is_not_used(lti: Setup) -> None:
    lti.platform.granted_scope = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
    event_id, candidate = await launched(lti)
    response = await lti.browser.post(acs_path(event_id, candidate), json={"action": "flag"}, headers=HOST)
    assert response.status_code == 502, response.text
    call = response.json()
    assert call["state"] == "failed" and "did not grant the ACS scope" in call["error"]
    assert lti.platform.acs_log == []
    listed = (await lti.browser.get(acs_path(event_id, candidate), headers=HOST)).json()["calls"]
    assert [c["state"] for c in listed] == ["failed"]


async def test_a_busy_platform_is_asked_again(lti: Setup) -> None:
    lti.platform.acs_fail_first = 1
    event_id, candidate = await launched(lti)
    response = await lti.browser.post(acs_path(event_id, candidate), json={"action": "flag"}, headers=HOST)
    assert response.status_code == 200, response.text
    assert response.json()["tries"] == 2
    assert len(lti.platform.acs_log) == 2


async def test_a_call_still_failing_stays_pending_and_is_sent_again_later(lti: Setup) -> None:
    lti.platform.acs_fail_first = 3  # more than the tries inside the request
    event_id, candidate = await launched(lti)
    response = await lti.browser.post(acs_path(event_id, candidate), json={"action": "flag"}, headers=HOST)
    assert response.status_code == 202, response.text
    assert (response.json()["state"], response.json()["tries"]) == ("pending", 3)
    assert "HTTP 503" in response.json()["error"]

    async def done() -> list[dict[str, Any]]:
        calls = (await lti.browser.get(acs_path(event_id, candidate), headers=HOST)).json()["calls"]
        return [c for c in calls if c["state"] == "done"]

    [call] = await eventually(done, timeout=30, what="the retry loop's try")
    assert (call["tries"], call["error"], call["answer"]) == (4, None, {"status": "running"})
    assert len(lti.platform.acs_log) == 4


async def test_acs_is_for_the_events_admins_and_proctors(lti: Setup) -> None:
    event_id, candidate = await launched(lti)
    other = mint_session(SECRET, user_id="pat", event_id="another", role="proctor", now=time.time())
    response = await lti.browser.post(
        acs_path(event_id, candidate), json={"action": "flag"}, headers={"Authorization": f"Bearer {other}"}
    )
    assert response.status_code == 403
    none = await lti.browser.post(acs_path(event_id, "nobody"), json={"action": "flag"}, headers=HOST)
    assert none.status_code == 404


async def test_the_candidate_timeline_shows_the_acs_calls(lti: Setup) -> None:
    page = await launch(lti, await begin(lti))
    event_id, candidate = f"lti-{lti.platform_id}-quiz-7", lti.platform.user["sub"]
    await ws_login(lti.hub.ws, session_of(page))
    await lti.browser.post(acs_path(event_id, candidate), json={"action": "flag"}, headers=HOST)
    timeline = await lti.browser.get(
        f"/api/v1/events/{event_id}/candidates/{candidate}/timeline", headers=HOST
    )
    assert timeline.status_code == 200, timeline.text
    assert [(c["action"], c["state"], c["answer"]) for c in timeline.json()["acs"]] == [
        ("flag", "done", {"status": "running"})
    ]


async def test_a_video_gap_of_an_lti_candidate_becomes_one_acs_flag(lti: Setup) -> None:
    page = await launch(lti, await begin(lti))
    event_id, candidate = f"lti-{lti.platform_id}-quiz-7", lti.platform.user["sub"]
    client, _hello = await ws_login(lti.hub.ws, session_of(page))
    assign = await client.expect("room.assign")
    await client.send("ack", {"id": assign["id"]})
    room = assign["data"]["room_id"]
    await client.send("media.status", {"room_id": room, "joined": True, "video": True, "audio": True})
    await client.send("media.status", {"room_id": room, "joined": True, "video": False, "audio": True})
    await eventually(lambda: lti.platform.acs_log, what="the ACS flag")
    await client.send("media.status", {"room_id": room, "joined": True, "video": True, "audio": True})

    async def gap_closed() -> bool:
        path = f"/api/v1/events/{event_id}/alerts"
        alerts = (await lti.browser.get(path, headers=HOST)).json()["alerts"]
        return any(a["kind"] == "video.gap" and a["state"] == "closed" for a in alerts)

    await eventually(gap_closed, what="the gap closed")
    calls = (await lti.browser.get(acs_path(event_id, candidate), headers=HOST)).json()["calls"]
    assert [(c["action"], c["by"], c["state"]) for c in calls] == [("flag", "policy", "done")]
    flag = lti.platform.acs_log
    assert len(flag) == 1
    assert (flag[0]["reason_code"], flag[0]["incident_severity"]) == ("video.gap", 0.6)


async def test_a_pending_call_survives_a_restart_on_redis(
    hub_factory: HubFactory, redis_server: RedisServer
) -> None:
    await flush(redis_server.url)
    settings = {"REDIS_URL": redis_server.url, "HMS_SIMULATOR": "embedded", "LTI_ACS_RETRY_S": "1"}
    first = hub_factory(**settings)
    platform = Platform()
    async with serve(platform.app) as base, httpx.AsyncClient(base_url=first.http, timeout=10) as browser:
        platform.base = base
        body = await platform.register(first.http, API_KEY)
        setup = Setup(first, platform, body["platform_id"], browser)
        event_id, candidate = await launched(setup)
        platform.acs_fail_first = 1000
        response = await browser.post(acs_path(event_id, candidate), json={"action": "flag"}, headers=HOST)
        assert response.status_code == 202, response.text
        # The platform keeps the tool's keys it fetched: the restarted hub (on another port) may retry
        # before the test could point the platform at its URL.
        platform.tool_jwks = (await browser.get("/lti/jwks")).json()
        first.stop()
        platform.acs_fail_first = 0
        second = hub_factory(**settings)
        async with httpx.AsyncClient(base_url=second.http, timeout=10) as again:
            assert (await again.get("/lti/jwks")).json() == platform.tool_jwks  # the same key, from Redis

            async def done() -> bool:
                calls = (await again.get(acs_path(event_id, candidate), headers=HOST)).json()["calls"]
                return [c["state"] for c in calls] == ["done"]

            # A try the first hub claimed as it stopped (its retry loop runs every second) holds that
            # try's claim for 60 s (control.py, retry_pending) before another node may send it.
            await eventually(done, timeout=90, what="the pending call sent by the restarted hub")


async def test_a_login_on_one_node_launches_on_another(
    hub_factory: HubFactory, redis_server: RedisServer
) -> None:
    await flush(redis_server.url)
    on_redis = {"REDIS_URL": redis_server.url, "HMS_SIMULATOR": "embedded"}
    one, two = hub_factory(**on_redis), hub_factory(**on_redis)
    platform = Platform()
    async with serve(platform.app) as base, httpx.AsyncClient(base_url=one.http, timeout=10) as browser:
        platform.base = base
        body = await platform.register(one.http, API_KEY)
        form = await begin(Setup(one, platform, body["platform_id"], browser))
        # the cookie is the browser's for 127.0.0.1 whatever the port, as it would be for one host name
        page = await browser.post(f"{two.http}/lti/launch", data=form)
        assert page.status_code == 200, page.text
        minted = await browser.post(
            f"{one.http}/lti/start-assessment", headers={"Authorization": f"Bearer {session_of(page)}"}
        )
        assert minted.status_code == 200, minted.text
        async with httpx.AsyncClient() as lms:
            assert (
                await lms.post(minted.json()["url"], data={"JWT": minted.json()["jwt"]})
            ).status_code == 200
        replay = await browser.post(f"{one.http}/lti/launch", data=form)
        assert_refused(replay, 401, "used already")
