"""The candidate page's local copy and its uploads (issue 14, E15, page side; docs/candidate-backfill.md),
in Chromium with the fake camera against a real hub and its in-process 100ms simulator.

Segments are one second long here (`BACKFILL_SEGMENT_S`), so a few seconds of sitting make several."""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import Pages, hub_env
from tests.browser.helpers import new_event, page_url
from tests.polling import eventually
from tests.servers import HubProcess, start_hub


@pytest.fixture(scope="module")
def archive_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("archive")


@pytest.fixture(scope="module")
def hub(archive_dir: Path) -> Iterator[HubProcess]:
    process = start_hub(
        hub_env(
            BACKFILL_SEGMENT_S="1",
            ARCHIVE_DIR=str(archive_dir),
            RECORDING_GAP_THRESHOLD_S="1",
            RECORDING_RECONCILE_S="1",
            HMS_SIM_RECORDING_DELAY_S="0.2",
        )
    )
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
    const meta = JSON.parse(await (await handle.getFile()).text());
    const bytes = await (await dir.getFileHandle(name.replace('.json', '.webm'))).getFile();
    out.push([meta, await b64(bytes)]);
  }
  return out;
}"""

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
