"""Issue 12 in Chromium: the proctor's page is a second witness of each candidate's video. It tells the
hub when a candidate's camera track ended (`media.observed`), and a candidate page patched to keep
saying `video: true` is caught as `video.disputed`."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import Pages, hub_env
from tests.browser.helpers import LOSE_CAMERA, proctor_and_candidate, tile
from tests.servers import HubProcess, start_hub

RECORD_SENT = """() => {
  // Keep every frame this page sends to the hub, to read what it reported.
  window.__sent = [];
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    window.__sent.push(String(data));
    return send.call(this, data);
  };
}"""

ALWAYS_VIDEO = """() => {
  // A tampered page: whatever its camera does, it tells the hub it is in the room with video.
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    const message = JSON.parse(String(data));
    if (message.type === "media.status") {
      message.data = { ...message.data, joined: true, video: true };
      data = JSON.stringify(message);
    }
    return send.call(this, data);
  };
}"""


@pytest.fixture(scope="module")
def hub() -> Iterator[HubProcess]:
    process = start_hub(hub_env(RECORDING_GAP_THRESHOLD_S="1"))
    yield process
    process.stop()


async def _observed(page: Page) -> list[dict[str, object]]:
    frames = [json.loads(f) for f in await page.evaluate("() => window.__sent")]
    return [f["data"] for f in frames if f["type"] == "media.observed"]


async def test_the_proctor_page_reports_a_candidate_whose_camera_track_ended(
    hub: HubProcess, pages: Pages
) -> None:
    _, proctor, candidate = await proctor_and_candidate(hub, pages, "observe")
    await proctor.evaluate(RECORD_SENT)
    await candidate.evaluate(LOSE_CAMERA)
    await proctor.wait_for_function(
        """() => window.__sent.some((f) => {
          const m = JSON.parse(f);
          return m.type === "media.observed" && m.data.candidate_id === "c1" && m.data.video === false;
        })""",
        timeout=10000,
    )
    (report,) = [o for o in await _observed(proctor) if o["video"] is False]
    assert report["candidate_id"] == "c1" and isinstance(report["at"], int)
    # The page and the proctor agree (camera off): the gap is the page's own, nothing is disputed.
    gap = proctor.locator('#alerts li[data-kind="video.gap"]')
    await expect(gap).to_have_attribute("data-alert-state", "open", timeout=10000)
    await expect(proctor.locator('#alerts li[data-kind="video.disputed"]')).to_have_count(0)


async def test_a_page_patched_to_keep_claiming_video_is_caught_as_disputed(
    hub: HubProcess, pages: Pages
) -> None:
    _, proctor, candidate = await proctor_and_candidate(hub, pages, "tampered")
    await candidate.evaluate(ALWAYS_VIDEO)
    await candidate.evaluate(LOSE_CAMERA)
    disputed = proctor.locator('#alerts li[data-kind="video.disputed"]')
    await expect(disputed).to_have_attribute("data-alert-state", "open", timeout=10000)
    await expect(disputed).to_contain_text("Video disputed: Cleo")
    # The tampered page's word alone would show video: the hub's status still says so, no gap.
    await expect(tile(proctor, "c1").locator('[data-field="video"]')).to_have_text("On")
    await expect(proctor.locator('#alerts li[data-kind="video.gap"]')).to_have_count(0)
