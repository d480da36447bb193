"""What the browser tests share: events on the hub, page URLs with a session in the fragment, the camera."""

from __future__ import annotations

import itertools
import os

import httpx
from playwright.async_api import Page, expect

from server.auth import Role
from tests.browser.conftest import Pages, session
from tests.conftest import API_KEY
from tests.servers import HubProcess

_ids = itertools.count(1)


async def new_event(hub: HubProcess, prefix: str, *, event_id: str | None = None, **config: object) -> str:
    """Create an event (a fresh id from `prefix`, or `event_id`) on the hub with the API key."""
    event_id = event_id or f"{prefix}-{os.getpid()}-{next(_ids)}"
    async with httpx.AsyncClient(base_url=hub.http, timeout=10) as http:
        response = await http.post(
            "/api/v1/events",
            json={"event_id": event_id, "name": f"Exam {prefix}", **config},
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
    assert response.status_code == 201, response.text
    return event_id


def page_url(
    hub: HubProcess, page: str, event_id: str, user_id: str, role: Role, name: str | None = None
) -> str:
    """`/<page>#token=<JWT>`: the session travels in the fragment, never in the query string."""
    return f"{hub.http}/{page}#token={session(event_id, user_id, role, name)}"


def tile(proctor: Page, candidate_id: str):  # type: ignore[no-untyped-def]
    return proctor.locator(f'.tile[data-candidate="{candidate_id}"]')


LOSE_CAMERA = """() => {
  // The camera goes away: its track ends and, until it is back, opening it fails as a lost device does.
  const track = document.querySelector('#self').srcObject.getVideoTracks()[0];
  window.__realGetUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async () => {
    throw new DOMException('Could not start video source', 'NotReadableError');
  };
  track.stop();
}"""

CAMERA_BACK = "() => { navigator.mediaDevices.getUserMedia = window.__realGetUserMedia; }"


async def proctor_and_candidate(hub: HubProcess, pages: Pages, prefix: str) -> tuple[str, Page, Page]:
    """A new event with proctor Pat (p1) watching candidate Cleo (c1), whose video is on: (event, pages)."""
    event = await new_event(hub, prefix)
    proctor = await pages.open(page_url(hub, "proctor", event, "p1", "proctor", "Pat"), label="proctor")
    candidate = await pages.open(
        page_url(hub, "candidate", event, "c1", "candidate", "Cleo"), label="candidate"
    )
    await expect(tile(proctor, "c1").locator('[data-field="video"]')).to_have_text("On")
    return event, proctor, candidate
