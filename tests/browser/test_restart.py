"""The hub restarts under open pages: each reconnects by itself and shows the same state as before."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Pages, hub_env
from tests.browser.helpers import new_event, page_url, tile
from tests.servers import HubProcess, start_hub

DOWNTIME_ERRORS = (
    r"WebSocket connection to .* failed",  # the browser logs each refused reconnect
    r"ERR_CONNECTION_REFUSED",  # the media plane's health checks while nothing listens
    r"status of 404 .*/hms-sim/media/",  # the old simulated peer, unknown to the new process
    r"status of 404 .*/rooms\]",  # the admin asked before the event was created again
)


@dataclass
class Restartable:
    """The module's hub process, replaced by the test (same port, same settings)."""

    process: HubProcess


@pytest.fixture(scope="module")
def hub() -> Iterator[Restartable]:
    holder = Restartable(start_hub(hub_env()))
    yield holder
    holder.process.stop()


async def test_every_page_reconnects_after_a_hub_restart(hub: Restartable, pages: Pages) -> None:
    process = hub.process
    event = await new_event(process, "restart")
    admin = await pages.open(page_url(process, "admin", event, "a1", "admin"), label="admin")
    review = await pages.open(page_url(process, "review", event, "a1", "admin"), label="review")
    proctor = await pages.open(page_url(process, "proctor", event, "p1", "proctor", "Pat"), label="proctor")
    candidate = await pages.open(
        page_url(process, "candidate", event, "c1", "candidate", "Cleo"), label="candidate"
    )

    async def same_state() -> None:
        for page in (admin, review, proctor, candidate):
            await expect(page.locator("#conn")).to_have_text("Connected", timeout=15000)
        await expect(candidate.locator("#f-room")).to_have_text("Joined", timeout=10000)
        await expect(candidate.locator("#f-camera")).to_have_text("On")
        await expect(candidate.locator("#banner")).to_be_hidden()
        card = tile(proctor, "c1")
        await expect(card.locator("h3")).to_have_text("Cleo")
        await expect(card.locator('[data-field="presence"]')).to_have_text("Online", timeout=10000)
        await expect(card.locator('[data-field="video"]')).to_have_text("On", timeout=10000)
        await expect(proctor.locator(".tile")).to_have_count(1)
        await expect(admin.locator("#stats [data-stat='online'] dd")).to_have_text("1", timeout=10000)
        await expect(admin.locator("#stats [data-stat='proctors'] dd")).to_have_text("1")

    await same_state()
    for page in (admin, review, proctor, candidate):
        pages.allow(page, *DOWNTIME_ERRORS)
    await asyncio.to_thread(hub.process.stop)  # SIGTERM: the hub drains, 1012 to every socket
    await expect(candidate.locator("#banner")).to_be_visible()
    await expect(proctor.locator("#conn")).to_have_text("Reconnecting…")
    # The memory store went with the process: the host app creates its event again on the new one.
    hub.process = await asyncio.to_thread(start_hub, process.env, port=process.port)
    await new_event(hub.process, "restart", event_id=event)
    await same_state()
