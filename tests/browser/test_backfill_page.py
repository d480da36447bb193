"""The candidate page's local copy and its uploads (issue 14, E15, page side; docs/candidate-backfill.md),
in Chromium with the fake camera against a real hub and its in-process 100ms simulator.

Segments are one second long here (`BACKFILL_SEGMENT_S`), so a few seconds of sitting make several."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, Request, Route, expect

from tests.browser.conftest import Pages, hub_env
from tests.browser.helpers import new_event, page_url
from tests.conftest import API_KEY
from tests.polling import eventually
from tests.s3 import CREDENTIALS, S3Server, s3_server  # noqa: F401 (fixture)
from tests.servers import HubProcess, start_hub


@pytest.fixture(scope="module")
def archive_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("archive")


def backfill_hub(archive: Path, **settings: object) -> HubProcess:
    return start_hub(
        hub_env(
            BACKFILL_SEGMENT_S="1",
            ARCHIVE_DIR=str(archive),
            RECORDING_GAP_THRESHOLD_S="1",
            RECORDING_RECONCILE_S="1",
            # One-second segments: a request is satisfied only when the holes left are under SLACK_MS.
            BACKFILL_SLACK_S=str(SLACK_MS / 1000),
            BACKFILL_MIN_S="0.5",  # the sittings here are a few seconds long
            **settings,
        )
    )


@pytest.fixture(scope="module")
def hub(archive_dir: Path) -> Iterator[HubProcess]:
    process = backfill_hub(archive_dir, HMS_SIM_RECORDING_DELAY_S="0.2")
    yield process
    process.stop()


@pytest.fixture
def s3_hub(tmp_path: Path, s3_server: S3Server) -> Iterator[tuple[HubProcess, S3Server, str]]:  # noqa: F811
    """A hub archiving to a bucket of moto's S3 server, whose CORS rule lets the hub's pages PUT to it
    (an operator sets the same rule on a real bucket: docs/candidate-backfill.md)."""
    bucket = s3_server.bucket()
    process = backfill_hub(
        tmp_path,
        HMS_SIM_RECORDING_DELAY_S="0.2",
        S3_BUCKET=bucket,
        S3_ENDPOINT_URL=s3_server.endpoint_url,
        **CREDENTIALS,
    )
    client = s3_server.client()
    rule = {"AllowedMethods": ["PUT"], "AllowedOrigins": [process.http], "AllowedHeaders": ["*"]}
    client.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [rule]})
    client.close()
    yield process, s3_server, bucket
    process.stop()


@pytest.fixture
def late_hub(tmp_path: Path) -> Iterator[HubProcess]:
    """100ms's recordings come LATE_S after their peer left; missing after 2 s: the hub asks first."""
    process = backfill_hub(tmp_path, HMS_SIM_RECORDING_DELAY_S=str(LATE_S), RECORDING_DEADLINE_S="2")
    yield process
    process.stop()


HELD = """async ({event, candidate, idb}) => {
  // What the page keeps: [meta, base64 of the bytes] per segment, from OPFS or (idb) IndexedDB.
  const b64 = async (blob) => {
    const bytes = new Uint8Array(await blob.arrayBuffer());
    let s = '';
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s);
  };
  const out = [];
  if (idb) {
    const done = (r) => new Promise((ok, no) => {
      r.onsuccess = () => ok(r.result);
      r.onerror = () => no(r.error);
    });
    const db = await done(indexedDB.open('proctorhub-backfill', 1));
    const rows = await done(db.transaction('segments').objectStore('segments').getAll());
    for (const row of rows) { const { blob, ...meta } = row; out.push([meta, await b64(blob)]); }
    return out;
  }
  const root = await navigator.storage.getDirectory();
  let dir;
  try {
    const top = await root.getDirectoryHandle('proctorhub-backfill');
    const ev = await top.getDirectoryHandle(encodeURIComponent(event));
    dir = await ev.getDirectoryHandle(encodeURIComponent(candidate));
  } catch { return out; }
  for await (const [name, handle] of dir.entries()) {
    if (!name.endsWith('.json')) continue;
    let meta;
    try {
      meta = JSON.parse(await (await handle.getFile()).text());
    } catch {
      continue; // being written right now: the page itself skips it too
    }
    const bytes = await (await dir.getFileHandle(name.replace('.json', '.webm'))).getFile();
    out.push([meta, await b64(bytes)]);
  }
  return out;
}"""

SLACK_MS = 500
"""BACKFILL_SLACK_S of these hubs, in ms: above the camera's start after joining (see covered())."""
LATE_S = 8
"""How late 100ms's recordings come in the cancel test (RECORDING_DEADLINE_S there is 2 s)."""

EBML = bytes.fromhex("1a45dfa3")


async def held(
    page: Page, event: str, candidate: str, *, idb: bool = False
) -> list[tuple[dict[str, Any], bytes]]:
    rows = await page.evaluate(HELD, {"event": event, "candidate": candidate, "idb": idb})
    return sorted(((meta, base64.b64decode(data)) for meta, data in rows), key=lambda r: r[0]["seq"])


def check_segments(segments: list[tuple[dict[str, Any], bytes]], event: str) -> None:
    """Each segment is a whole WebM file of its own, described truly by its metadata."""
    for meta, data in segments:
        assert data[:4] == EBML, meta  # starts with its own header: playable alone
        assert meta["size"] == len(data)
        assert meta["sha256"] == hashlib.sha256(data).hexdigest()
        assert (meta["event"], meta["candidate"], meta["content_type"]) == (event, "c1", "video/webm")
        assert meta["end"] > meta["start"]
    seqs = [m["seq"] for m, _ in segments]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    for (a, _), (b, _) in itertools.pairwise(segments):
        assert b["start"] >= a["start"]


@pytest.mark.parametrize("store", ["opfs", "indexeddb"])
async def test_the_page_keeps_its_camera_in_self_contained_segments(
    hub: HubProcess, pages: Pages, store: str
) -> None:
    event = await new_event(hub, f"local-{store}")
    url = page_url(hub, "candidate", event, "c1", "candidate", "Cleo")
    candidate = await pages.open(f"{url}&store={store}", label="candidate")
    await expect(candidate.locator("#f-camera")).to_have_text("On")

    async def three() -> list[tuple[dict[str, Any], bytes]]:
        segments = await held(candidate, event, "c1", idb=store == "indexeddb")
        return segments if len(segments) >= 3 else []

    segments = await eventually(three, timeout=30, interval=0.25, what="three segments held")
    check_segments(segments, event)
    await expect(candidate.locator("#f-local")).not_to_have_text("None")
    # A reload keeps counting where it was: no seq is used twice.
    before = max(m["seq"] for m, _ in segments)
    await candidate.reload()
    await expect(candidate.locator("#f-camera")).to_have_text("On")

    async def newer() -> list[tuple[dict[str, Any], bytes]]:
        now = await held(candidate, event, "c1", idb=store == "indexeddb")
        return now if max(m["seq"] for m, _ in now) > before + 1 else []

    check_segments(
        await eventually(newer, timeout=30, interval=0.25, what="segments after the reload"), event
    )


QUOTA = 200_000
"""The origin's storage quota in the quota test: a few one-second segments."""


async def test_a_page_short_of_storage_keeps_its_newest_footage_and_says_so(
    hub: HubProcess, pages: Pages
) -> None:
    """The browser refuses a write over the origin's quota (set through DevTools; Chromium's
    `navigator.storage.estimate()` does not show that quota, so the page learns it from the refusal):
    the page drops its oldest footage no request needs to keep recording, and tells the hub
    `quota_short`. Nothing is requested here (100ms records), so all of it may go."""
    event = await new_event(hub, "quota")
    reports: list[dict[str, Any]] = []

    async def small_disk(context: BrowserContext, page: Page) -> None:
        cdp = await context.new_cdp_session(page)
        await cdp.send("Storage.overrideQuotaForOrigin", {"origin": hub.http, "quotaSize": QUOTA})

        def sent(payload: str | bytes) -> None:
            message = json.loads(payload)
            if message.get("type") == "media.status" and "local" in message["data"]:
                reports.append(message["data"]["local"])

        page.on("websocket", lambda ws: ws.on("framesent", sent))

    url = page_url(hub, "candidate", event, "c1", "candidate", "Cleo")
    candidate = await pages.open(url, label="candidate", prepare=small_disk)
    await expect(candidate.locator("#f-recording")).to_have_text("On")
    await eventually(
        lambda: any(r["quota_short"] for r in reports), timeout=60, interval=0.25, what="quota_short"
    )
    await expect(candidate.locator("#f-local")).to_contain_text("(disk nearly full)")
    first = max(m["seq"] for m, _ in await held(candidate, event, "c1"))

    async def newer() -> list[tuple[dict[str, Any], bytes]]:
        now = await held(candidate, event, "c1")
        return now if max(m["seq"] for m, _ in now) >= first + 3 else []

    kept = await eventually(newer, timeout=30, interval=0.25, what="newer segments kept within the quota")
    check_segments(kept, event)
    assert sum(len(data) for _, data in kept) <= QUOTA
    assert min(m["seq"] for m, _ in kept) > 0  # the oldest went to make room
    await expect(candidate.locator("#f-recording")).to_have_text("On")


# ---------------------------------------------------------------- uploads the hub asks for


async def add_fault(hub: HubProcess, **rule: object) -> None:
    """A fault rule on the hub's in-process 100ms simulator (docs/simulator.md)."""
    async with httpx.AsyncClient(base_url=hub.http, timeout=10) as http:
        (await http.post("/hms-sim/_sim/faults", json=rule)).raise_for_status()


async def report_row(hub: HubProcess, event: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=hub.http, timeout=10) as http:
        response = await http.get(
            f"/api/v1/events/{event}/report", headers={"Authorization": f"Bearer {API_KEY}"}
        )
    response.raise_for_status()
    return next(r for r in response.json()["candidates"] if r["candidate_id"] == event)


async def recordings(hub: HubProcess, event: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=hub.http, timeout=10) as http:
        response = await http.get(
            f"/api/v1/events/{event}/candidates/{event}/recordings",
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
    return response.json()["segments"] if response.status_code == 200 else []


async def sit(hub: HubProcess, pages: Pages, prefix: str, **fault: object) -> tuple[str, Page]:
    """Cleo (her id is the event's) sits, 100ms's recording of her spoilt as `fault` says, until her
    page holds a few segments."""
    event = await new_event(hub, prefix)
    # The fault names this candidate only: the user id is the event's, so that no other test's
    # candidate (whose peer may leave late, after its page closed) takes it.
    if fault:
        await add_fault(hub, user_id=event, count=1, **fault)
    candidate = await pages.open(
        page_url(hub, "candidate", event, event, "candidate", "Cleo"),
        label="candidate",
        # The hub may close a request while the page announces its last segment for it: 409, dropped.
        expect_errors=(r"status of 409 .*/backfill\]",),
    )
    await expect(candidate.locator("#f-recording")).to_have_text("On")

    async def some() -> bool:
        return len(await held(candidate, event, event)) >= 3

    await eventually(some, timeout=30, interval=0.25, what="three segments held")
    return event, candidate


async def finish(candidate: Page) -> None:
    await candidate.locator("#finish").click()
    await candidate.locator("#finish-confirm").click()
    await expect(candidate.locator("#finish")).to_be_hidden()


async def timeline_of(hub: HubProcess, event: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=hub.http, timeout=10) as http:
        response = await http.get(
            f"/api/v1/events/{event}/candidates/{event}/timeline",
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
    response.raise_for_status()
    return response.json()


def uncovered(start: int, end: int, spans: list[list[int]]) -> list[tuple[int, int]]:
    """The parts of [start, end) that no span covers."""
    holes, at = [], start
    for a, b in sorted(spans):
        if a > at:
            holes.append((at, min(a, end)))
        at = max(at, b)
        if at >= end:
            break
    if at < end:
        holes.append((at, end))
    return [(a, b) for a, b in holes if b > a]


async def covered(hub: HubProcess, event: str) -> dict[str, Any]:
    """Wait until every gap of Cleo's is backfilled; check the page's segments cover it; the report row.

    The holes the hub accepts are those under BACKFILL_SLACK_S (SLACK_MS): it calls a request satisfied
    then, and cancels it even if the page still holds the rest. The page cannot fill the moment between
    joining the room and its recorder's first frame (a tenth or two of a second here: the simulator joins
    before the camera is on), so the hub's slack must be above it for the gap to close."""
    seen: list[dict[str, Any]] = [{}]

    async def done() -> dict[str, Any] | None:
        timeline = seen[0] = await timeline_of(hub, event)
        gaps = timeline["gaps"]
        return timeline if gaps and all(g["backfilled"] for g in gaps) else None

    try:
        timeline = await eventually(done, timeout=60, interval=0.5, what="every gap backfilled")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the timeline: {seen[0]}") from None
    spans = timeline["intervals"]["backfilled"]
    first_video = timeline["intervals"]["video"][0][0]
    for gap in timeline["gaps"]:
        for a, b in uncovered(gap["started_at"], gap["ended_at"], spans):
            head = a == gap["started_at"] and b - first_video < 1000
            assert head or b - a < SLACK_MS, (a, b, spans, gap)
    row = await report_row(hub, event)
    assert row["recorded_pct"] == 0 and row["backfilled_minutes"] > 0
    # All covered time is the page's; holes under the slack (the tail after a cancel) count as not.
    assert row["coverage_pct"] == row["backfilled_pct"] > 50
    return row


def backfill_keys(segments: list[dict[str, Any]]) -> list[str]:
    return [s["key"] for s in segments if s.get("kind") == "backfill"]


async def archived_backfill(hub: HubProcess, event: str, like: list[str] | None = None) -> list[str]:
    """The backfill keys the archive lists, once they are those the hub accepted (or `like`): the
    archiver writes a candidate's manifest a moment after its last change, not at once."""
    found: list[list[str]] = [[]]

    async def listed() -> bool:
        found[0] = backfill_keys(await recordings(hub, event))
        wanted = like
        if wanted is None:
            accepted = (await timeline_of(hub, event))["backfill"]["segments"]
            wanted = [s["key"] for s in accepted if s["state"] == "archived"]
        return bool(wanted) and sorted(set(found[0])) == sorted(set(wanted))

    await eventually(listed, timeout=30, interval=0.25, what=f"backfill segments in {event}'s archive")
    return found[0]


async def test_a_failed_recording_is_filled_from_the_page_and_the_report_counts_it(
    hub: HubProcess, pages: Pages
) -> None:
    event, candidate = await sit(hub, pages, "filled", kind="recording.fail")
    await finish(candidate)
    row = await covered(hub, event)
    assert row["recordings_failed"] == 1
    # Done: the page says so; the archive lists the page's segments as backfill, each once.
    await expect(candidate.locator("#finished")).to_be_visible(timeout=30000)
    await expect(candidate.locator("#uploading")).to_be_hidden()
    await expect(candidate.locator("#f-room")).to_have_text("Left")
    keys = await archived_backfill(hub, event)
    assert len(keys) == len(set(keys))
    # The review page plays them in place, marked as backfill.
    review = await pages.open(
        f"{page_url(hub, 'review', event, 'a1', 'admin')}&candidate={event}", label="review"
    )
    bars = review.locator('.track[data-row="videos"] .video-seg[data-kind="backfill"]')
    await expect(bars).to_have_count(len(keys))
    await expect(review.locator('.track[data-row="backfilled"] .bar-seg').first).to_be_visible()
    await expect(review.locator('#segments li[data-kind="backfill"] video')).to_have_count(len(keys))
    await expect(review.locator('#segments li[data-kind="backfill"]').first).to_contain_text("Backfill")


async def test_a_page_reloaded_mid_upload_resumes_and_the_archive_holds_each_segment_once(
    hub: HubProcess, pages: Pages
) -> None:
    event, candidate = await sit(hub, pages, "reload", kind="recording.fail")
    stalled: list[Request] = []
    release = asyncio.Event()

    async def stall_first_put(route: Route) -> None:
        if route.request.method != "PUT" or stalled:
            await route.fallback()
            return
        stalled.append(route.request)
        await release.wait()  # never answered: the reload cuts it off
        await route.abort()

    await candidate.route("**/*", stall_first_put)
    await finish(candidate)
    await eventually(lambda: stalled, timeout=60, interval=0.25, what="an upload under way")
    await expect(candidate.locator("#uploading")).to_be_visible()
    await candidate.reload()
    release.set()
    # The next visit of the same link opens on the Finish screen and finishes the uploads.
    await expect(candidate.locator("#finish")).to_be_hidden()
    await covered(hub, event)
    await expect(candidate.locator("#finished")).to_be_visible(timeout=30000)
    keys = await archived_backfill(hub, event)
    assert len(keys) == len(set(keys))


async def test_a_segment_whose_bytes_do_not_match_is_refused_and_sent_again(
    hub: HubProcess, pages: Pages
) -> None:
    event, candidate = await sit(hub, pages, "checksum", kind="recording.fail")
    puts: list[str] = []

    async def corrupt_first_put(route: Route) -> None:
        if route.request.method != "PUT":
            await route.fallback()
            return
        puts.append(route.request.url)
        body = route.request.post_data_buffer or b""
        if len(puts) == 1:  # one byte flipped on the way: the hub's checksum no longer matches
            body = body[:-1] + bytes([body[-1] ^ 0xFF])
        await route.continue_(post_data=body)

    await candidate.route("**/*", corrupt_first_put)
    pages.allow(candidate, r"status of 422 .*/complete\]")  # the refusal, as the browser logs it
    await finish(candidate)
    await covered(hub, event)
    await expect(candidate.locator("#finished")).to_be_visible(timeout=30000)
    keys = await archived_backfill(hub, event)
    assert len(keys) == len(set(keys))
    assert len(puts) == len(keys) + 1, puts  # the refused one went twice, every other once


async def test_a_late_recording_cancels_the_request(late_hub: HubProcess, pages: Pages) -> None:
    """100ms's recording comes late: the hub asks the page, then withdraws the request when it arrives.
    The page's uploads are held on the way so that it cannot fill the gap first."""
    event, candidate = await sit(late_hub, pages, "late")
    held_puts: list[Request] = []
    over = asyncio.Event()

    async def hold_puts(route: Route) -> None:
        if route.request.method != "PUT":
            await route.fallback()
            return
        held_puts.append(route.request)
        await over.wait()  # not answered while the test runs
        await route.abort()

    await candidate.route("**/*", hold_puts)
    pages.allow(candidate, r"ERR_FAILED .*/backfill/uploads/")  # the held upload, aborted at the end
    await finish(candidate)
    await eventually(lambda: held_puts, timeout=60, interval=0.25, what="the page asked to upload")
    await expect(candidate.locator("#uploading")).to_be_visible()
    # The late recording arrives: the request is cancelled, nothing is pending any more.
    await expect(candidate.locator("#finished")).to_be_visible(timeout=60000)
    await expect(candidate.locator("#uploading")).to_be_hidden()
    row = await report_row(late_hub, event)
    assert row["recordings_arrived"] == 1 and row["backfilled_pct"] == 0
    assert backfill_keys(await recordings(late_hub, event)) == []
    over.set()


async def test_with_an_s3_archive_the_page_puts_its_segments_into_the_bucket(
    s3_hub: tuple[HubProcess, S3Server, str], pages: Pages
) -> None:
    hub, s3, bucket = s3_hub
    event, candidate = await sit(hub, pages, "s3", kind="recording.fail")
    announced: set[str] = set()

    def announce(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/backfill"):
            announced.add(json.loads(request.post_data or "{}")["sha256"])

    candidate.on("request", announce)
    await finish(candidate)
    await covered(hub, event)
    await expect(candidate.locator("#finished")).to_be_visible(timeout=30000)
    client = s3.client()
    try:
        archived = await archived_backfill(hub, event)  # what the hub accepted, listed in the manifest
        listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        # Two segments that would share a key (same second) keep both: the second gets a tag
        # (`..._backfill_<tag>.webm`, archive/layout.py `alternate_key`).
        in_bucket = {o["Key"] for o in listed if re.search(r"_backfill(_[0-9a-f]{16})?\.webm$", o["Key"])}
        assert set(archived) <= in_bucket, (archived, in_bucket)
        for key in archived:
            data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert data[:4] == EBML
            assert hashlib.sha256(data).hexdigest() in announced  # the very bytes the page announced
    finally:
        client.close()
