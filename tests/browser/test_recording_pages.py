"""What the recording monitor (issue 5) feeds the pages: video-gap alerts live on the proctor dashboard,
flags on the review timeline, and the admin's report (table and CSV). Written against the shapes of
docs/protocol.md ("Recording monitor"); they need the monitor, timeline, alerts and report on the hub."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Pages, hub_env
from tests.browser.helpers import CAMERA_BACK, LOSE_CAMERA, new_event, page_url, proctor_and_candidate, tile
from tests.servers import HubProcess, start_hub


@pytest.fixture(scope="module")
def hub() -> Iterator[HubProcess]:
    """A hub that calls a second without video a gap, and whose simulator's recordings come quickly."""
    process = start_hub(
        hub_env(RECORDING_GAP_THRESHOLD_S="1", RECORDING_RECONCILE_S="1", HMS_SIM_RECORDING_DELAY_S="0.2")
    )
    yield process
    process.stop()


async def test_a_video_gap_alert_opens_on_the_proctor_page_and_closes(hub: HubProcess, pages: Pages) -> None:
    _, proctor, candidate = await proctor_and_candidate(hub, pages, "gap")
    card = tile(proctor, "c1")
    await expect(card.locator('[data-field="recording"]')).to_have_text("On")
    await candidate.evaluate(LOSE_CAMERA)
    gap = proctor.locator('#alerts li[data-kind="video.gap"]')
    await expect(gap).to_have_attribute("data-alert-state", "open", timeout=10000)
    await expect(gap).to_contain_text("No video: Cleo (camera off)")
    await expect(card).to_have_attribute("data-alert", "open")
    await expect(card.locator(".tile-alerts")).to_have_text("No video")
    await expect(proctor.locator("#alert-count")).to_have_text("1")
    assert (await proctor.title()).startswith("(1) ")
    # The filter keeps the candidate who needs attention in view.
    await proctor.locator("#attention").check()
    await expect(card).to_be_visible()
    await candidate.evaluate(CAMERA_BACK)
    await expect(gap).to_have_attribute("data-alert-state", "closed", timeout=10000)
    await expect(gap).to_contain_text("lasted")
    await expect(card).to_have_attribute("data-alert", "none")
    await expect(proctor.locator("#alert-count")).to_have_text("")
    await expect(card).to_be_hidden()  # all is well again: filtered out


async def test_a_flag_appears_on_the_review_timeline(hub: HubProcess, pages: Pages) -> None:
    event, proctor, _ = await proctor_and_candidate(hub, pages, "flag")
    review = await pages.open(
        f"{page_url(hub, 'review', event, 'p1', 'proctor', 'Pat')}&candidate=c1", label="review"
    )
    await expect(review.locator("#timeline-name")).to_have_text("of Cleo")
    await expect(review.locator('.track[data-row="present"] .bar-seg')).to_have_count(1)
    await expect(review.locator('.track[data-row="video"] .bar-seg')).to_have_count(1)
    await tile(proctor, "c1").locator("button.flag").click()
    await proctor.locator("#flag-note").fill("Looked away for a long time")
    await proctor.locator("#flag-severity").select_option("high")
    await proctor.locator("#flag-send").click()
    mark = review.locator('.track[data-row="flags"] .flag-mark[data-severity="high"]')
    await expect(mark).to_have_count(1)
    assert "high: Looked away for a long time" in (await mark.get_attribute("aria-label") or "")
    await expect(review.locator("#flags li")).to_contain_text("p1: Looked away for a long time")
    await expect(tile(proctor, "c1").locator('[data-field="flags"]')).to_have_text("1")


async def test_a_finished_candidates_recording_plays_in_review(hub: HubProcess, pages: Pages) -> None:
    """Needs the whole chain: the simulator's stream.recording.success webhook, the intake, the archive."""
    event = await new_event(hub, "segment")
    candidate = await pages.open(
        page_url(hub, "candidate", event, "c1", "candidate", "Cleo"), label="candidate"
    )
    await expect(candidate.locator("#f-recording")).to_have_text("On")
    review = await pages.open(
        f"{page_url(hub, 'review', event, 'a1', 'admin')}&candidate=c1",
        label="review",
        # Recorded (the monitor knows) but not archived yet: the archive answers 404, the page says so.
        expect_errors=(r"status of 404 .*/recordings\]",),
    )
    await expect(review.locator("#timeline-name")).to_have_text("of Cleo")
    # The candidate finishes: its peer leaves, the simulator writes the recording, the hub archives it.
    await candidate.locator("#finish").click()
    await candidate.locator("#finish-confirm").click()
    await expect(candidate.locator("#finished")).to_be_visible()
    segment = review.locator("#segments video")
    for _ in range(60):
        await review.locator("#reload").click()
        if await segment.count():
            break
        await review.wait_for_timeout(250)
    await expect(segment).to_have_count(1)
    source = await segment.get_attribute("src") or ""
    assert "/archive/" in source or source.startswith("http"), source
    assert (await review.request.get(source)).status == 200


async def test_the_admin_sees_and_downloads_the_report(hub: HubProcess, pages: Pages) -> None:
    event = await new_event(hub, "report")
    admin = await pages.open(page_url(hub, "admin", event, "a1", "admin", "Ada"), label="admin")
    candidate = await pages.open(
        page_url(hub, "candidate", event, "c1", "candidate", "Cleo"), label="candidate"
    )
    await expect(candidate.locator("#f-camera")).to_have_text("On")
    await expect(admin.locator("#stats [data-stat='online'] dd")).to_have_text("1")
    await admin.locator("#load-report").click()
    row = admin.locator('#report tr[data-candidate="c1"]')
    await expect(row).to_contain_text("Cleo")
    await expect(admin.locator("#report-status")).to_have_text(f"Report of {event}, 1 candidates.")
    async with admin.expect_download() as download_info:
        await admin.locator("#download-report").click()
    download = await download_info.value
    assert download.suggested_filename == f"report-{event}.csv"
    text = Path(await download.path()).read_text(encoding="utf-8")
    header, *rows = text.strip().splitlines()
    assert "candidate_id" in header and "coverage_pct" in header
    assert any(line.startswith("c1,") for line in rows), text
