"""The LTI launch in Chromium: the platform (tests/lti_platform.py) starts a login in the browser, its
auth page form-posts the id_token to the hub, the launch page checks the camera, opens the candidate
page in its own window and sends LtiStartAssessment, which the platform verifies; a proctor of an LTI
event pauses, resumes or terminates the attempt through ACS from the candidate's tile; the review page
lists the calls made to the platform."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlencode

import httpx
from playwright.async_api import Page, expect

from server.lti.messages import AP
from tests.browser.conftest import Pages, session
from tests.browser.helpers import new_event, page_url, tile
from tests.client import login as ws_login
from tests.conftest import API_KEY
from tests.hub.test_lti import HOST, Setup, acs_path, begin, launch, session_of
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
        dialog = proctor.locator("#acs-dialog")
        await card.locator("button.control").click()
        await proctor.locator("#acs-action").select_option("terminate")
        await dialog.get_by_role("button", name="Cancel").click()  # thought better of it: nothing sent
        await expect(dialog).to_be_hidden()
        await card.locator("button.control").click()
        await expect(proctor.locator("#acs-action")).to_have_value("pause")  # never left on terminate
        await proctor.locator("#acs-action").select_option("terminate")
        await proctor.locator("#acs-send").click()
        await expect(dialog).to_be_visible()  # no reason, no call
        await proctor.locator("#acs-reason").fill("phone on the desk")
        await proctor.locator("#acs-send").click()
        await expect(proctor.locator("#announcements")).to_contain_text(
            "Platform: terminate for Ada Lovelace done (the platform says: terminated)."
        )
        [sent] = platform.acs_log
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


async def test_the_review_page_lists_a_candidates_calls_to_the_platform(
    hub: HubProcess, pages: Pages
) -> None:
    platform = Platform(client_id="browser-tool-review")
    async with serve(platform.app) as base, httpx.AsyncClient(base_url=hub.http, timeout=10) as browser:
        platform.base = base
        body = await platform.register(hub.http, API_KEY)
        setup = Setup(hub, platform, body["platform_id"], browser)
        launched = await launch(setup, await begin(setup))
        event, candidate = f"lti-{body['platform_id']}-quiz-7", platform.user["sub"]
        await ws_login(hub.ws, session_of(launched))  # the candidate comes online
        proctor = {"Authorization": f"Bearer {session(event, 'pat', 'proctor', 'Pat')}"}
        flag = {"action": "flag", "reason_code": "recording.missing", "reason_msg": "no recording for 4 min"}
        for wanted, headers in ((flag, proctor), ({"action": "update", "extra_time": 90}, HOST)):
            answer = await browser.post(acs_path(event, candidate), json=wanted, headers=headers)
            assert answer.status_code == 200, answer.text

    review = await pages.open(
        f"{page_url(hub, 'review', event, 'a1', 'admin')}&event={event}&candidate={candidate}", label="review"
    )
    calls = review.locator("#acs li")
    await expect(review.locator("#acs-panel")).to_be_visible()
    await expect(calls).to_have_count(2)
    await expect(calls.nth(0)).to_have_attribute("data-state", "done")
    await expect(calls.nth(0)).to_contain_text(
        "Flag · recording.missing by pat: answered, the platform says: running"
    )
    await expect(calls.nth(0)).to_contain_text("no recording for 4 min")
    await expect(calls.nth(1)).to_contain_text("Extra time · 90 s by api")
    await expect(calls.nth(1)).to_contain_text("(extra time in all: 90 s)")


async def test_the_review_page_of_a_candidate_without_lti_shows_no_platform_panel(
    hub: HubProcess, pages: Pages
) -> None:
    event = await new_event(hub, "plain-review")
    await pages.open(page_url(hub, "candidate", event, "c1", "candidate", "Cleo"), label="candidate")
    review = await pages.open(
        f"{page_url(hub, 'review', event, 'a1', 'admin')}&event={event}&candidate=c1", label="review"
    )
    await expect(review.locator("#timeline-name")).to_have_text("of Cleo")
    await expect(review.locator("#acs-panel")).to_be_hidden()


@asynccontextmanager
async def course_page(
    hub: HubProcess, pages: Pages, client_id: str, course_url: str
) -> AsyncIterator[tuple[Platform, Page]]:
    """A registered platform, and its course page at `course_url` (answered by the browser) opening
    the proctoring tool's login inside a frame."""
    platform = Platform(client_id=client_id)
    async with serve(platform.app) as base:
        platform.base = base
        await platform.register(hub.http, API_KEY)
        login = f"{hub.http}/lti/login?{urlencode(platform.login_params())}"
        frame = f'<iframe src="{html.escape(login)}" allow="camera" width="900" height="600"></iframe>'
        page = f"<!doctype html><title>Course</title>{frame}"
        yield platform, await pages.open(course_url, serve={course_url: page}, label="course")


async def test_a_frame_that_keeps_our_cookies_out_offers_a_new_window(hub: HubProcess, pages: Pages) -> None:
    # a course page of another site: the hub's cookies in its frame are third-party, and kept out
    url = "http://exam.localhost/course"
    async with course_page(hub, pages, "browser-tool-framed", url) as (platform, course):
        frame = course.frame_locator("iframe")
        await expect(frame.locator("#blocked")).to_be_visible()
        await expect(frame.locator("#blocked")).to_contain_text("keeps this proctoring tool's cookies out")
        assert platform.auth_requests == []  # nothing went to the platform from the frame
        async with course.context.expect_page() as opened:
            await frame.locator("#new-window").click()
        window = await opened.value
        await expect(window.locator("h1")).to_have_text("Before your proctored exam")
        await expect(window.locator("#name")).to_have_text("Ada Lovelace")
        await expect(frame.locator("#continued")).to_be_visible()


async def test_a_frame_that_keeps_our_cookies_launches_inside_it(hub: HubProcess, pages: Pages) -> None:
    url = f"{hub.http}/course-of-the-same-site"  # the frame keeps the hub's cookies: first-party
    async with course_page(hub, pages, "browser-tool-frame-ok", url) as (platform, course):
        frame = course.frame_locator("iframe")
        await expect(frame.locator("h1")).to_have_text("Before your proctored exam")
        await expect(frame.locator("#camera-state")).to_have_attribute("data-state", "on")
        assert len(platform.auth_requests) == 1
