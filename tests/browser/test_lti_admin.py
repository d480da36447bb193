"""The admin page's event form: an LTI event's ACS policy (`lti`) and the per-event host-app events URL
(`events_url`), shown, edited, refused with the hub's reason at the field, and saved."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.async_api import expect

from tests.browser.conftest import Pages
from tests.browser.helpers import new_event, page_url
from tests.conftest import API_KEY
from tests.polling import eventually
from tests.servers import HubProcess


async def event_config(hub: HubProcess, event_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=hub.http, timeout=10) as http:
        answer = await http.get(f"/api/v1/events/{event_id}", headers={"Authorization": f"Bearer {API_KEY}"})
    found: dict[str, Any] = answer.json()
    return found


async def test_the_admin_edits_an_lti_events_acs_policy(hub: HubProcess, pages: Pages) -> None:
    event = await new_event(hub, "lti-platform", event_id="lti-p9-quiz-1")
    plain = await new_event(hub, "plain-exam")
    admin = await pages.open(page_url(hub, "admin", "*", "root", "admin", "Root"), label="admin")
    await expect(admin.locator("#conn")).to_have_text("Connected")

    await admin.locator(f'#events tr[data-event="{plain}"] button').click()
    await expect(admin.locator("#form-title")).to_have_text(f"Edit {plain}")
    await expect(admin.locator("#lti-policy")).to_be_hidden()  # not launched from a platform

    await admin.locator(f'#events tr[data-event="{event}"] button').click()
    policy = admin.locator("#lti-policy")
    await expect(policy).to_be_visible()
    # the defaults of an event that never chose
    for name, value in [
        ("lti_flag_alerts", "recording.missing"),
        ("lti_flag_alerts", "video.gap"),
        ("lti_flag_proctor_severities", "high"),
        ("lti_extra_time_causes", "peer_left_100ms"),
    ]:
        await expect(policy.locator(f'input[name="{name}"][value="{value}"]')).to_be_checked()
    await expect(
        policy.locator('input[name="lti_extra_time_causes"][value="socket_lost"]')
    ).not_to_be_checked()
    await admin.locator("#f-name").fill("Renamed")
    await admin.locator("#save-event").click()
    await expect(admin.locator("#form-status")).to_have_text(f"Event {event} saved.")
    assert (await event_config(hub, event))["lti"] is None  # untouched: still the hub's defaults

    await policy.locator('input[name="lti_flag_alerts"][value="video.gap"]').uncheck()
    await policy.locator('input[name="lti_flag_proctor_severities"][value="medium"]').check()
    await policy.locator('input[name="lti_extra_time_causes"][value="socket_lost"]').check()
    await admin.locator("#f-lti_flag_gap_s").fill("0.1")
    await admin.locator("#save-event").click()
    await expect(admin.locator("#e-lti_flag_gap_s")).to_have_text("a number of seconds from 0.5 to 86400")
    await admin.locator("#f-lti_flag_gap_s").fill("90")
    await admin.locator("#save-event").click()
    await expect(admin.locator("#form-status")).to_have_text(f"Event {event} saved.")
    assert (await event_config(hub, event))["lti"] == {
        "flag_alerts": ["recording.missing", "recording.failed"],
        "flag_proctor_severities": ["medium", "high"],
        "extra_time_causes": ["peer_left_100ms", "socket_lost"],
        "flag_gap_s": 90,
    }
    await admin.reload()
    await admin.locator(f'#events tr[data-event="{event}"] button').click()
    await expect(admin.locator("#f-lti_flag_gap_s")).to_have_value("90")
    await expect(policy.locator('input[name="lti_flag_alerts"][value="video.gap"]')).not_to_be_checked()


async def test_the_admin_sets_an_events_own_host_events_url(hub: HubProcess, pages: Pages) -> None:
    event = await new_event(hub, "events-url")
    admin = await pages.open(
        page_url(hub, "admin", "*", "root", "admin", "Root"),
        label="admin",
        expect_errors=(r"status of 400 \(Bad Request\)",),  # the hub's refusal, shown at the field
    )
    await admin.locator(f'#events tr[data-event="{event}"] button').click()
    await expect(admin.locator("#f-events_url")).to_have_value("")
    await admin.locator("#f-events_url").fill("ftp://host.example/events")
    await admin.locator("#save-event").click()
    await expect(admin.locator("#e-events_url")).to_have_text("comma-separated http(s) URLs")
    # this hub has no HUB_EVENTS_SECRET: the hub's refusal is shown at the field
    await admin.locator("#f-events_url").fill("http://127.0.0.1:9/events")
    await admin.locator("#save-event").click()
    await expect(admin.locator("#e-events_url")).to_have_text("HUB_EVENTS_SECRET is not set on this hub")
    await admin.locator("#f-events_url").fill("")
    await admin.locator("#f-events_off").check()
    await admin.locator("#save-event").click()
    await expect(admin.locator("#form-status")).to_have_text(f"Event {event} saved.")

    async def stored() -> bool:
        return (await event_config(hub, event))["events_url"] == ""

    await eventually(stored, what="no host events for the event")
    await admin.reload()
    await admin.locator(f'#events tr[data-event="{event}"] button').click()
    await expect(admin.locator("#f-events_off")).to_be_checked()
