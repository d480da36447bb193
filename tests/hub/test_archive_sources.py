"""The archiver takes only what 100ms would send (issue 12): a forged recording URL is never fetched, a
redirect is not followed, a body over the announced size is cut off, and what the archive holds is
served as a recording or as a sandboxed download, never as a page of the hub's origin."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from server.recording.archive.contract import SourceRefused
from server.recording.archive.local import LocalArchive
from server.recording.archive.sources import source_policy
from tests.archive_support import settings, source
from tests.conftest import API_KEY, SECRET, create_event
from tests.polling import eventually
from tests.servers import HubProcess, start_hub
from tests.simulator_support import serve
from tests.sitting import add_fault, sit

WEBHOOK_SECRET = "archive-sources-webhook-" + "w" * 16
BUCKET = "recordings"
KEY = "100ms/room/20240610/session/peer/stream.mp4"
BODY = b"\x00\x00\x00\x18ftypmp42" + b"v" * 4096


@dataclass
class Listener:
    """A tiny HTTP server on 127.0.0.1 that records every request it gets."""

    base: str = ""
    paths: list[str] = field(default_factory=list)

    def app(self) -> Starlette:
        async def any_path(request: Request) -> Response:
            path = request.url.path
            self.paths.append(path)
            if path.endswith("/redirect.mp4"):
                return RedirectResponse(f"{self.base}/{BUCKET}/100ms/target.mp4", status_code=302)
            if path.endswith("/endless.mp4"):  # no Content-Length: only reading tells the size

                async def chunks() -> AsyncIterator[bytes]:
                    for _ in range(64):
                        yield b"x" * 65536

                return StreamingResponse(chunks(), media_type="video/mp4")
            if path.endswith("/large.mp4"):
                return Response(b"x" * 2_000_000, media_type="video/mp4")
            return Response(BODY, media_type="video/mp4")

        return Starlette(routes=[Route("/{path:path}", any_path, methods=["GET", "HEAD"])])


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    found = Listener()
    async with serve(found.app()) as base:
        found.base = base
        yield found


@pytest.fixture
async def archive(listener: Listener, no_aws_env: None, tmp_path: Path) -> AsyncIterator[LocalArchive]:
    """A local archive whose S3 store (S3_ENDPOINT_URL) is the listener, 100ms uploading to BUCKET."""
    config = settings(archive_dir=str(tmp_path), s3_endpoint_url=listener.base)
    built = LocalArchive(replace(config, hms_recording_bucket=BUCKET))
    await built.start()
    yield built
    await built.aclose()


def stored(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


async def test_a_presigned_url_of_the_recording_bucket_is_read(
    archive: LocalArchive, listener: Listener
) -> None:
    src = source(source_path=f"s3://{BUCKET}/{KEY}", presigned_url=f"{listener.base}/{BUCKET}/{KEY}?sig=1")
    segment = await archive.store_segment(replace(src, size=len(BODY)))
    assert (archive.root / segment.key).read_bytes() == BODY and listener.paths == [f"/{BUCKET}/{KEY}"]


async def test_a_redirect_is_not_followed(archive: LocalArchive, listener: Listener) -> None:
    url = f"{listener.base}/{BUCKET}/100ms/redirect.mp4?sig=1"
    with pytest.raises(SourceRefused, match="redirect") as refused:
        await archive.store_segment(
            source(source_path=f"s3://{BUCKET}/100ms/redirect.mp4", presigned_url=url)
        )
    assert refused.value.reason == "redirect"
    assert listener.paths == [f"/{BUCKET}/100ms/redirect.mp4"] and not stored(archive.root)


@pytest.mark.parametrize("name", ["large.mp4", "endless.mp4"])
async def test_a_body_over_the_announced_size_is_cut_and_refused(
    archive: LocalArchive, listener: Listener, name: str
) -> None:
    src = source(
        source_path=f"s3://{BUCKET}/100ms/{name}",
        presigned_url=f"{listener.base}/{BUCKET}/100ms/{name}?sig=1",
        size=100_000,
    )
    with pytest.raises(SourceRefused, match="more than the 100000 bytes") as refused:
        await archive.store_segment(src)
    assert refused.value.reason == "too_large" and not stored(archive.root)


async def test_urls_100ms_would_not_send_are_never_fetched(archive: LocalArchive, listener: Listener) -> None:
    forged = [
        ("s3://attacker/x.mp4", f"{listener.base}/other-bucket/{KEY}"),  # another bucket on the store
        (f"s3://{BUCKET}/exams/x.mp4", f"{listener.base}/{BUCKET}/exams/x.mp4"),  # outside 100ms/
        ("s3://attacker/x.mp4", "https://127.0.0.1/x.mp4"),  # a host nobody listed
        ("s3://attacker/x.mp4", f"{listener.base.replace('127.0.0.1', 'localhost')}/{BUCKET}/{KEY}"),
    ]
    for path, url in forged:
        with pytest.raises(SourceRefused) as refused:
            await archive.store_segment(source(source_path=path, presigned_url=url))
        assert refused.value.reason == "not_allowed", (path, url)
    assert listener.paths == [] and not stored(archive.root)


async def test_a_listed_host_on_a_private_address_is_not_connected(
    listener: Listener,
    no_aws_env: None,
    tmp_path: Path,
) -> None:
    archive = LocalArchive(settings(archive_dir=str(tmp_path), hms_recording_hosts=("127.0.0.1",)))
    port = listener.base.rsplit(":", 1)[1]
    try:
        with pytest.raises(SourceRefused, match="not public") as refused:
            await archive.store_segment(source(presigned_url=f"https://127.0.0.1:{port}/x.mp4"))
    finally:
        await archive.aclose()
    assert refused.value.reason == "private_address" and listener.paths == []


# -- through a real hub: a forged webhook, and what the archive serves --------------------------------


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    folder = tmp_path_factory.mktemp("archive")
    process = start_hub(
        {
            "HUB_SECRET": SECRET,
            "HUB_API_KEY": API_KEY,
            "HMS_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "ARCHIVE_DIR": str(folder),
            "HMS_SIM_RECORDING_DELAY_S": "0.2",
            "LOG_LEVEL": "WARNING",
        }
    )
    process.env["ARCHIVE_DIR"] = str(folder)
    yield process
    process.stop()


async def test_a_forged_recording_url_is_never_fetched(hub: HubProcess, listener: Listener) -> None:
    event = "forged-recording"
    create_event(hub, event, room_size=5, expected_candidates=1)
    async with httpx.AsyncClient(base_url=hub.http, timeout=30) as media:
        await add_fault(media, kind="recording.drop", user_id="c1", count=1)  # 100ms will announce none
        candidate = await sit(hub, event, "c1", media)
        await candidate.finish()
        events = (await media.get("/hms-sim/_sim/events")).json()["events"]
        [join] = [
            e
            for e in events
            if e["type"] == "peer.join.success" and e["data"]["peer_id"] == candidate.peer_id
        ]
        forged = {
            "version": "2.0",
            "id": str(uuid.uuid4()),
            "timestamp": join["timestamp"],
            "type": "stream.recording.success",
            "data": {
                "room_id": candidate.room_id,
                "session_id": join["data"]["session_id"],
                "peer_id": candidate.peer_id,
                "stream_id": "stream-1",
                "user_id": "c1",
                "recording_id": "forged-recording-1",
                "recording_path": "s3://attacker/evil.mp4",
                "recording_presigned_url": f"{listener.base}/evil.mp4",
                "size": len(BODY),
                "duration": 5,
                "type": "regular",
            },
        }
        answer = await media.post(
            "/webhooks/100ms",
            content=orjson.dumps(forged),
            headers={"X-Proctorhub-Webhook-Secret": WEBHOOK_SECRET},
        )
        assert answer.status_code == 200, answer.text
        manifest = Path(hub.env["ARCHIVE_DIR"]) / "proctorhub" / event / "c1" / "manifest.json"

        def settled() -> bool:
            refused = manifest.exists() and orjson.loads(manifest.read_bytes()).get("refused")
            return bool(listener.paths or refused)

        await eventually(settled, timeout=20, what="the forged recording fetched or refused")
        assert listener.paths == []
        body = orjson.loads(manifest.read_bytes())
        [refused] = body["refused"]
        assert refused["recording_id"] == "forged-recording-1" and refused["reason"] == "not_allowed"
        assert body["segments"] == []
        listed = await media.get(
            f"/api/v1/events/{event}/candidates/c1/recordings", headers={"Authorization": f"Bearer {API_KEY}"}
        )
        assert listed.status_code == 200 and listed.json()["segments"] == []
        assert [r["recording_id"] for r in listed.json()["refused"]] == ["forged-recording-1"]
        metrics = (await media.get("/metrics", headers={"Authorization": f"Bearer {API_KEY}"})).text
        assert 'proctorhub_archive_refused_total{reason="not_allowed"} 1.0' in metrics


async def test_an_html_recording_is_downloaded_never_shown(hub: HubProcess) -> None:
    folder = Path(hub.env["ARCHIVE_DIR"])
    archive = LocalArchive(replace(settings(archive_dir=str(folder)), hub_secret=hub.env["HUB_SECRET"]))
    page = b"<html><script>fetch('/api/v1/events')</script></html>"
    files = {}
    for name, body in (("page.html", page), ("stream.mp4", BODY)):
        file = folder / "100ms" / "served" / name
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(body)
        files[name] = file
    try:
        html = await archive.store_segment(
            source(source_path=files["page.html"].as_uri(), recording_id="r-html")
        )
        mp4 = await archive.store_segment(
            source(source_path=files["stream.mp4"].as_uri(), recording_id="r-mp4")
        )
        shown = httpx.get(hub.http + await archive.url(html.key))
        played = httpx.get(hub.http + await archive.url(mp4.key))
    finally:
        await archive.aclose()
    assert html.key.endswith(".html") and shown.status_code == 200 and shown.content == page
    assert shown.headers["content-type"] == "application/octet-stream"
    assert shown.headers["content-disposition"].startswith("attachment")
    assert shown.headers["content-security-policy"].startswith("sandbox")
    assert shown.headers["x-content-type-options"] == "nosniff"
    assert played.status_code == 200 and played.content == BODY
    assert played.headers["content-type"] == "video/mp4" and "content-disposition" not in played.headers
    assert played.headers["x-content-type-options"] == "nosniff"


def test_file_recordings_never_come_from_the_archives_own_folder(tmp_path: Path) -> None:
    """By default 100ms uploads under S3_PREFIX, the archive's own prefix: then no file:// is read."""
    real = source_policy(replace(settings(archive_dir=str(tmp_path)), hms_recording_prefix=None))
    assert real.file_root is None and real.prefix == "proctorhub"
    standalone = source_policy(settings(archive_dir=str(tmp_path)))  # HMS_RECORDING_PREFIX=100ms
    assert standalone.file_root == str(tmp_path.resolve() / "100ms") and standalone.prefix == "100ms"
    assert source_policy(settings(archive_dir=str(tmp_path), hms_recording_prefix="")).file_root is None
