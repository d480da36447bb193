"""The LTI launch in Chromium: the platform (tests/lti_platform.py) starts a login in the browser, its
auth page form-posts the id_token to the hub, the launch page checks the camera, opens the candidate
page in its own window and sends LtiStartAssessment, which the platform verifies."""

from __future__ import annotations

from urllib.parse import urlencode

from playwright.async_api import expect

from server.lti.messages import AP
from tests.browser.conftest import Pages
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
