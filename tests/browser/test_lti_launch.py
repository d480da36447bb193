"""The LTI launch in Chromium: the platform (tests/lti_platform.py) starts a login in the browser, its
auth page form-posts the id_token to the hub, the launch page checks the camera, opens the candidate
page in its own window and sends LtiStartAssessment, which the platform verifies; a proctor of an LTI
event pauses, resumes or terminates the attempt through ACS from the candidate's tile."""

from __future__ import annotations

from urllib.parse import urlencode

from playwright.async_api import expect

from server.lti.messages import AP
from tests.browser.conftest import Pages
from tests.browser.helpers import new_event, page_url, tile
from tests.conftest import API_KEY
from tests.lti_platform import Platform
from tests.servers import HubProcess
from tests.simulator_support import serve


async def test_a_launch_checks_the_camera_opens_the_candidate_window_and_starts_the_assessment(
    hub: HubProcess, pages: Pages
) -> None:
    platform = Platform(client_id="browser-tool")
    async with serve(platform.app) as base:
        platform.base = base
        await platform.register(hub.http, API_KEY)

        page = await pages.open(f"{hub.http}/lti/login?{urlencode(platform.login_params())}", label="launch")
        await expect(page.locator("h1")).to_have_text("Before your proctored exam")
        await expect(page.locator("#name")).to_have_text("Ada Lovelace")
        await expect(page.locator("#camera-state")).to_have_attribute("data-state", "on")
        start = page.locator("#start")
        await expect(start).to_be_disabled()
        await page.locator("#confirm").check()
        async with page.context.expect_page() as popup_info:
            await start.click()
        candidate = await popup_info.value
        await expect(candidate.locator("#conn")).to_have_text("Connected")
        await expect(page.locator("#exam")).to_have_text("The assessment has started")
        assert page.url == f"{base}/start_assessment"
        assert platform.refused == []
        claims = platform.started[-1]
        assert claims[AP + "verified_user"] == {"given_name": "Ada", "family_name": "Lovelace"}
        assert claims[AP + "session_data"] == platform.session_data
        await expect(page.locator("#popup-blocked")).to_have_count(0)


async def test_a_blocked_proctoring_window_is_told_plainly_and_nothing_is_sent(
    hub: HubProcess, pages: Pages
) -> None:
    platform = Platform(client_id="browser-tool-blocked")
    async with serve(platform.app) as base:
        platform.base = base
        await platform.register(hub.http, API_KEY)
        page = await pages.open(f"{hub.http}/lti/login?{urlencode(platform.login_params())}", label="launch")
        await expect(page.locator("#camera-state")).to_have_attribute("data-state", "on")
        await page.evaluate("window.open = () => null")  # what a popup blocker answers
        await page.locator("#confirm").check()
        await page.locator("#start").click()
        await expect(page.locator("#popup-blocked")).to_be_visible()
        await expect(page.locator("#popup-blocked")).to_contain_text("blocked the proctoring window")
        await expect(page.locator("#start")).to_be_enabled()
        assert platform.started == []


async def test_a_proctor_terminates_an_lti_attempt_on_the_platform(hub: HubProcess, pages: Pages) -> None:
    platform = Platform(client_id="browser-tool-acs")
    async with serve(platform.app) as base:
        platform.base = base
        body = await platform.register(hub.http, API_KEY)
        event = f"lti-{body['platform_id']}-quiz-7"
        launch = await pages.open(
            f"{hub.http}/lti/login?{urlencode(platform.login_params())}", label="launch"
        )
        await expect(launch.locator("#camera-state")).to_have_attribute("data-state", "on")
        await launch.locator("#confirm").check()
        async with launch.context.expect_page() as popup_info:
            await launch.locator("#start").click()
        await expect((await popup_info.value).locator("#conn")).to_have_text("Connected")
        proctor = await pages.open(page_url(hub, "proctor", event, "p1", "proctor", "Pat"), label="proctor")
        card = tile(proctor, "student-42")
        await expect(card.locator("h3")).to_have_text("Ada Lovelace")
        await card.locator("button.control").click()
        await proctor.locator("#acs-action").select_option("terminate")
        await proctor.locator("#acs-reason").fill("phone on the desk")
        await proctor.locator("#acs-send").click()
        await expect(proctor.locator("#announcements")).to_contain_text(
            "Platform: terminate for Ada Lovelace done (the platform says: terminated)."
        )
        sent = platform.acs_log[-1]
        assert (sent["action"], sent["reason_msg"], sent["user"]["sub"]) == (
            "terminate",
            "phone on the desk",
            "student-42",
        )


async def test_a_proctor_of_an_event_not_launched_by_lti_has_no_exam_button(
    hub: HubProcess, pages: Pages
) -> None:
    event = await new_event(hub, "plain")
    proctor = await pages.open(page_url(hub, "proctor", event, "p1", "proctor", "Pat"), label="proctor")
    await pages.open(page_url(hub, "candidate", event, "c1", "candidate", "Cleo"), label="candidate")
    await expect(tile(proctor, "c1").locator("button.flag")).to_be_visible()
    await expect(tile(proctor, "c1").locator("button.control")).to_have_count(0)
