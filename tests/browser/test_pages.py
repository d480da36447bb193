"""The pages in Chromium against a real hub with its 100ms simulator (issue 7's browser tests)."""

from __future__ import annotations

import time

from playwright.async_api import expect

from tests.browser.conftest import Pages, session
from tests.browser.helpers import (
    CAMERA_BACK,
    LOSE_CAMERA,
    new_event,
    page_url,
    proctor_and_candidate,
    tile,
)
from tests.servers import HubProcess

HOSTILE = "<img src=x onerror=alert(1)>"


async def test_a_candidate_appears_on_the_proctor_dashboard_with_its_video(
    hub: HubProcess, pages: Pages
) -> None:
    event = await new_event(hub, "online")
    proctor = await pages.open(page_url(hub, "proctor", event, "p1", "proctor", "Pat"), label="proctor")
    await expect(proctor.locator("#conn")).to_have_text("Connected")
    candidate = await pages.open(
        page_url(hub, "candidate", event, "c1", "candidate", "Cleo"), label="candidate"
    )
    await expect(candidate.locator("#conn")).to_have_text("Connected")
    card = tile(proctor, "c1")
    await expect(card.locator('[data-field="presence"]')).to_have_text("Online", timeout=1000)
    await expect(card.locator("h3")).to_have_text("Cleo")
    await expect(card.locator('[data-field="video"]')).to_have_text("On")
    await expect(candidate.locator("#f-camera")).to_have_text("On")
    await expect(candidate.locator("#f-room")).to_have_text("Joined")
    await expect(candidate.locator("#f-recording")).to_have_text("On")
    await expect(proctor.locator("#count")).to_have_text("1 watched, 0 need attention")


async def test_a_proctors_warning_reaches_the_candidate_by_keyboard(hub: HubProcess, pages: Pages) -> None:
    _, proctor, candidate = await proctor_and_candidate(hub, pages, "warn")
    card = tile(proctor, "c1")
    await card.locator("button.warn").focus()
    await proctor.keyboard.press("Enter")
    await expect(proctor.locator("#warn-dialog")).to_be_visible()
    text = "Eyes on your own screen, please <b>now</b>"
    await proctor.keyboard.type(text)
    await proctor.locator("#warn-send").focus()
    await proctor.keyboard.press("Enter")
    await expect(candidate.locator("#warnings li")).to_contain_text(f"Pat: {text}")
    await expect(proctor.locator("#announcements")).to_contain_text("Warning sent to Cleo")
    assert await candidate.locator("#warnings b").count() == 0


async def test_a_lost_camera_shows_on_the_tile_and_comes_back(hub: HubProcess, pages: Pages) -> None:
    _, proctor, candidate = await proctor_and_candidate(hub, pages, "camera")
    video = tile(proctor, "c1").locator('[data-field="video"]')
    await candidate.evaluate(LOSE_CAMERA)
    await expect(candidate.locator("#f-camera")).to_have_text("Lost: trying again…")
    await expect(video).to_have_text("Off")
    await expect(tile(proctor, "c1")).to_have_attribute("data-attention", "true")
    await candidate.evaluate(CAMERA_BACK)
    await expect(candidate.locator("#f-camera")).to_have_text("On")
    await expect(video).to_have_text("On")


async def test_a_hostile_name_is_text_on_every_page(hub: HubProcess, pages: Pages) -> None:
    event = await new_event(hub, "xss")
    admin = await pages.open(page_url(hub, "admin", event, "a1", "admin"), label="admin")
    review = await pages.open(page_url(hub, "review", event, "a1", "admin"), label="review")
    proctor = await pages.open(page_url(hub, "proctor", event, "p1", "proctor", HOSTILE), label="proctor")
    await expect(proctor.locator("#conn")).to_have_text("Connected")
    candidate = await pages.open(
        page_url(hub, "candidate", event, "c1", "candidate", HOSTILE), label="candidate"
    )
    await expect(candidate.locator("#name")).to_have_text(HOSTILE)
    await expect(tile(proctor, "c1").locator("h3")).to_have_text(HOSTILE)
    await expect(admin.locator("#rooms tbody")).to_contain_text(HOSTILE)
    await review.locator("#reload").click()
    await expect(review.locator("#candidate option[value='c1']")).to_contain_text(HOSTILE)
    # The same text as a warning and a flag note.
    await tile(proctor, "c1").locator("button.warn").click()
    await proctor.locator("#warn-text").fill(HOSTILE)
    await proctor.locator("#warn-send").click()
    await expect(candidate.locator("#warnings li")).to_contain_text(HOSTILE)
    await tile(proctor, "c1").locator("button.flag").click()
    await proctor.locator("#flag-note").fill(HOSTILE)
    await proctor.locator("#flag-send").click()
    await expect(proctor.locator("#announcements")).to_contain_text(f"(medium): {HOSTILE}")
    for page in (admin, review, proctor, candidate):
        assert await page.locator("img").count() == 0
    # A dialog from onerror=alert(1) would fail the test (conftest), as would a CSP refusal in the console.


async def test_the_admin_creates_an_event_with_field_errors(hub: HubProcess, pages: Pages) -> None:
    admin = await pages.open(
        page_url(hub, "admin", "*", "root", "admin", "Root"),
        label="admin",
        expect_errors=(r"status of 409",),  # 409: the id taken, shown at the field
    )
    await expect(admin.locator("#conn")).to_have_text("Connected")
    event_id = f"form-{int(time.time() * 1000)}"
    await admin.locator("#new-event").click()
    await admin.locator("#f-event_id").fill(event_id)
    await admin.locator("#f-name").fill("Form exam")
    await admin.locator("#f-room_size").fill("0")
    await admin.locator("#save-event").click()
    await expect(admin.locator("#e-room_size")).to_have_text("must be between 1 and 100")
    await expect(admin.locator("#f-room_size")).to_have_attribute("aria-invalid", "true")
    await expect(admin.locator("#f-room_size")).to_be_focused()
    await admin.locator("#f-room_size").fill("5")
    await admin.locator("#save-event").click()
    await expect(admin.locator("#form-status")).to_have_text(f"Event {event_id} created.")
    await expect(admin.locator(f'#events tr[data-event="{event_id}"]')).to_contain_text("Form exam")
    await expect(admin.locator("#live-event")).to_have_text(event_id)
    await expect(admin.locator("#e-room_size")).to_have_text("")
    # Only the hub knows the id is taken: its answer lands at the field.
    await admin.locator("#new-event").click()
    await admin.locator("#f-event_id").fill(event_id)
    await admin.locator("#f-name").fill("Again")
    await admin.locator("#save-event").click()
    await expect(admin.locator("#e-event_id")).to_contain_text("already exists")


async def test_the_admin_mints_a_link_that_opens_a_candidate_page(hub: HubProcess, pages: Pages) -> None:
    event = await new_event(hub, "links")
    admin = await pages.open(page_url(hub, "admin", event, "a1", "admin"), label="admin")
    await expect(admin.locator("#stats [data-stat='online'] dd")).to_have_text("0")
    await admin.locator("#l-user_id").fill("linked-1")
    await admin.locator("#l-name").fill("Linked One")
    await admin.locator("#mint").click()
    await expect(admin.locator("#link-out")).to_be_visible()
    link = await admin.locator("#link-out").input_value()
    assert link.startswith(f"{hub.http}/candidate#token=")
    candidate = await pages.open(link, label="candidate")
    await expect(candidate.locator("#name")).to_have_text("Linked One")
    await expect(candidate.locator("#conn")).to_have_text("Connected")
    await expect(admin.locator("#stats [data-stat='online'] dd")).to_have_text("1")
    await expect(admin.locator("#rooms tbody")).to_contain_text("Linked One")


HOST_PAGE = """<!doctype html><title>Exam platform</title><h1>Exam</h1>
<iframe id="proctoring" src="{hub}/candidate" allow="camera" width="900" height="500"></iframe>
<script>
window.events = [];
addEventListener("message", (event) => {{
  if (event.origin !== "{hub}") return;
  window.events.push(event.data.type);
  if (event.data.type === "proctorhub.ready") {{
    document.getElementById("proctoring").contentWindow.postMessage(
      {{type: "proctorhub.token", token: "{token}"}}, "{hub}");
  }}
}});
</script>"""


async def test_embedded_in_a_host_page_the_token_comes_by_postmessage(hub: HubProcess, pages: Pages) -> None:
    event = await new_event(hub, "embed")
    token = session(event, "c-embed", "candidate", "Emma")
    html = HOST_PAGE.format(hub=hub.http, token=token)
    host = await pages.open(
        "http://exam.localhost/exam", label="host", serve={"http://exam.localhost/**": html}
    )
    await host.wait_for_function("window.events.includes('proctorhub.connected')")
    frame = host.frame_locator("#proctoring")
    await expect(frame.locator("#name")).to_have_text("Emma")
    await expect(frame.locator("#f-camera")).to_have_text("On")
    # A host the hub does not list may not frame the pages (frame-ancestors).
    intruder = await pages.open(
        "http://evil.localhost/exam",
        label="intruder",
        serve={"http://evil.localhost/**": HOST_PAGE.format(hub=hub.http, token=token)},
        expect_errors=(r"frame-ancestors",),
    )
    await intruder.wait_for_timeout(500)
    assert await intruder.evaluate("window.events") == []


SOCKET_PROBE = """<!doctype html><title>probe</title><script>
window.result = new Promise((resolve) => {{
  const ws = new WebSocket("{ws}");
  ws.onopen = () => ws.send(JSON.stringify({{type: "auth", id: 1, data: {{token: "{token}"}}}}));
  ws.onmessage = (event) => resolve({{first: JSON.parse(event.data).type}});
  ws.onclose = (event) => resolve({{code: event.code}});
}});
</script>"""


async def test_a_page_of_another_origin_is_refused_unless_listed(hub: HubProcess, pages: Pages) -> None:
    event = await new_event(hub, "origin")
    probe = SOCKET_PROBE.format(ws=hub.ws, token=session(event, "c-origin", "candidate"))
    evil = await pages.open("http://evil.localhost/", label="evil", serve={"http://evil.localhost/**": probe})
    assert await evil.evaluate("window.result") == {"code": 1008}
    listed = await pages.open(
        "http://exam.localhost/", label="listed", serve={"http://exam.localhost/**": probe}
    )
    assert await listed.evaluate("window.result") == {"first": "hello"}


async def test_pages_carry_a_csp_without_unsafe_inline_and_load_the_vendored_sdk(
    hub: HubProcess, pages: Pages
) -> None:
    page = await pages.open(f"{hub.http}/", label="index")
    response = await page.request.get(f"{hub.http}/proctor")
    csp = response.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "script-src 'self'" in csp and "frame-ancestors 'self' http://exam.localhost" in csp
    assert "media-src 'self' blob:" in csp
    # The 100ms Web SDK, vendored from npm and bundled by web/vendor.mjs, loads as a module under the CSP.
    kind = await page.evaluate("import('/vendor/hms-video-store.js').then((m) => typeof m.HMSReactiveStore)")
    assert kind == "function"


async def test_every_page_takes_its_token_out_of_the_address_bar(hub: HubProcess, pages: Pages) -> None:
    """Once read, the token is gone from the URL (and so from history, a shared screen, a copied link);
    the page's other fragment parameters stay, and a reload still signs in (this tab kept the token)."""
    event = await new_event(hub, "address-bar")
    for page_name, role in (("candidate", "candidate"), ("proctor", "proctor"), ("admin", "admin")):
        url = page_url(hub, page_name, event, f"{role}-bar", role)  # type: ignore[arg-type]
        page = await pages.open(url, label=page_name)
        await expect(page.locator("#conn")).to_have_text("Connected")
        href, hash_ = await page.evaluate("[location.href, location.hash]")
        assert "token" not in href and hash_ == "", (page_name, href)
        await page.reload()
        await expect(page.locator("#conn")).to_have_text("Connected")
    review = await pages.open(
        f"{page_url(hub, 'review', event, 'admin-review', 'admin')}&event={event}",
        label="review",
    )
    await expect(review.locator("#conn")).to_have_text("Connected")
    assert await review.evaluate("location.hash") == f"#event={event}"
    assert "token" not in await review.evaluate("location.href")
