"""LocalArchive: the S3 layout under a folder, and its signed links served by a real hub."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from server.config import ConfigError
from server.hms.simulator import LocalTarget
from server.hms.simulator.recorder import fake_mp4
from server.recording.archive.contract import ArchiveError
from server.recording.archive.factory import build_archive
from server.recording.archive.local import LocalArchive
from tests.archive_support import SECRET, settings, source
from tests.polling import eventually
from tests.s3 import S3Server
from tests.servers import HubProcess, start_hub
from tests.simulator_support import running

BODY = fake_mp4({"peer_id": "peer-1", "stream_id": "stream-1"})
KEY = "proctorhub/exam-1/cand-1/20240610T061320Z_665f1b2c3d4e5f6a7b8c9d0e_stream.mp4"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("archive")


@pytest.fixture(scope="module")
def hub(folder: Path) -> Iterator[HubProcess]:
    process = start_hub({"HUB_SECRET": SECRET, "ARCHIVE_DIR": str(folder), "LOG_LEVEL": "WARNING"})
    yield process
    process.stop()


@pytest.fixture
async def archive(folder: Path, request: pytest.FixtureRequest) -> AsyncIterator[LocalArchive]:
    """An archive in the hub's folder, under a prefix of the test's own."""
    built = build_archive(settings(archive_dir=str(folder), s3_prefix=request.node.name))
    assert isinstance(built, LocalArchive)
    await built.start()
    yield built
    await built.aclose()


def recording(folder: Path, name: str, body: bytes = BODY) -> Path:
    """A file where the simulator would write it (under ARCHIVE_DIR/100ms)."""
    path = folder / "100ms" / name / "stream.mp4"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return path


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.part")]


async def test_a_file_is_copied_into_the_layout_once(archive: LocalArchive, folder: Path) -> None:
    file = recording(folder, "once")
    src = source(source_path=file.as_uri(), size=len(BODY))
    segment = await archive.store_segment(src)
    assert segment.key == KEY.replace("proctorhub", archive.prefix) and segment.size == len(BODY)
    stored = folder / segment.key
    assert stored.read_bytes() == BODY
    inode = stored.stat().st_ino
    assert await archive.store_segment(src) == segment
    assert stored.stat().st_ino == inode and not leftovers(folder)


async def test_two_recordings_in_the_same_second_keep_both(archive: LocalArchive, folder: Path) -> None:
    first = source(source_path=recording(folder, "a").as_uri(), recording_id="rec-a")
    second = replace(first, source_path=recording(folder, "b", b"other").as_uri(), recording_id="rec-b")
    a, b = await archive.store_segment(first), await archive.store_segment(second)
    assert (
        a.key != b.key and (folder / a.key).read_bytes() == BODY and (folder / b.key).read_bytes() == b"other"
    )
    assert (await archive.store_segment(second)).key == b.key
    assert (await archive.store_segment(first)).key == a.key


async def test_s3_sources_are_downloaded_when_s3_is_configured(
    s3_server: S3Server, aws_env: None, folder: Path, tmp_path: Path
) -> None:
    bucket = s3_server.bucket()
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key="100ms/x.mp4", Body=BODY)
    client.close()
    config = settings(archive_dir=str(tmp_path), s3_endpoint_url=s3_server.endpoint_url)
    archive = LocalArchive(replace(config, hms_recording_bucket=bucket))
    try:
        segment = await archive.store_segment(source(source_path=f"s3://{bucket}/100ms/x.mp4"))
        assert (tmp_path / segment.key).read_bytes() == BODY
    finally:
        await archive.aclose()


async def test_without_s3_an_s3_source_needs_its_presigned_url(
    s3_server: S3Server, no_aws_env: None, tmp_path: Path
) -> None:
    bucket = s3_server.bucket()
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key="100ms/x.mp4", Body=BODY)
    presigned = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "100ms/x.mp4"})
    client.close()
    config = settings(archive_dir=str(tmp_path), s3_endpoint_url=s3_server.endpoint_url)
    archive = LocalArchive(replace(config, hms_recording_bucket=bucket))
    try:
        src = source(source_path=f"s3://{bucket}/100ms/x.mp4")
        with pytest.raises(ArchiveError, match="S3 is not configured"):
            await archive.store_segment(src)
        segment = await archive.store_segment(replace(src, presigned_url=presigned))
        assert (tmp_path / segment.key).read_bytes() == BODY
        assert not leftovers(tmp_path)
    finally:
        await archive.aclose()


async def test_the_manifest_round_trips(archive: LocalArchive, folder: Path) -> None:
    assert await archive.read_manifest("exam-1", "cand/1") is None
    key = await archive.write_manifest("exam-1", "cand/1", {"segments": [], "name": "Zoë"})
    assert key == f"{archive.prefix}/exam-1/cand~2F1/manifest.json"
    assert await archive.read_manifest("exam-1", "cand/1") == {
        "segments": [],
        "name": "Zoë",
        "event_id": "exam-1",
        "candidate_id": "cand/1",
    }
    (folder / key).write_text("{not json")
    with pytest.raises(ArchiveError, match="not JSON"):
        await archive.read_manifest("exam-1", "cand/1")
    assert not leftovers(folder)


async def test_signed_links_are_served_by_the_hub(
    archive: LocalArchive, folder: Path, hub: HubProcess
) -> None:
    segment = await archive.store_segment(source(source_path=recording(folder, "served").as_uri()))
    url = await archive.url(segment.key, expires_s=60)
    assert url.startswith(f"/archive/{segment.key}?exp=")
    async with httpx.AsyncClient(base_url=hub.http) as http:
        whole = await http.get(url)
        assert whole.status_code == 200 and whole.content == BODY
        assert whole.headers["content-type"] == "video/mp4"
        part = await http.get(url, headers={"Range": "bytes=4-11"})
        assert part.status_code == 206 and part.content == BODY[4:12]
        tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
        other_key = url.replace(segment.key, segment.key.replace(".mp4", ".webm"))
        for bad in (tampered, other_key, url.split("?")[0], url.replace("exp=", "exp=1")):
            answer = await http.get(bad)
            assert answer.status_code == 403 and answer.json()["error"]["code"] == "forbidden", bad
        expired = LocalArchive(settings(archive_dir=str(folder)), clock=lambda: time.time() - 120)
        answer = await http.get(await expired.url(segment.key, expires_s=60))
        assert answer.status_code == 403 and "expired" in answer.json()["error"]["message"]
        missing = await http.get(await archive.url(f"{archive.prefix}/exam-1/nobody/x.mp4"))
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


async def test_path_traversal_is_refused(hub: HubProcess, folder: Path) -> None:
    (folder.parent / "secret.txt").write_text("not yours")
    archive = LocalArchive(settings(archive_dir=str(folder)))
    async with httpx.AsyncClient(base_url=hub.http) as http:
        for key in ("../secret.txt", "a/../../secret.txt", "./x", "a//b"):
            signed = await archive.url(key)  # even a link signed with the hub's secret
            encoded = signed.replace("..", "%2E%2E").replace("./", "%2E/")
            answer = await http.get(encoded)
            assert answer.status_code == 400, (key, answer.text)
            assert "not yours" not in answer.text
        (folder / "link").symlink_to(folder.parent)
        answer = await http.get(await archive.url("link/secret.txt"))
        assert answer.status_code == 400 and "not yours" not in answer.text


async def test_a_simulator_recording_is_archived_locally(archive: LocalArchive, folder: Path) -> None:
    async with running(storage=LocalTarget(root=folder, prefix="100ms")) as h:
        room = await h.create_room("exam-1-room")
        await h.join(room["id"], "proctor-1", "proctor")
        peer = await h.join(room["id"], "cand-1")
        await h.media(peer["peer_id"], "publish", video=True)
        await h.media(peer["peer_id"], "leave")
        await eventually(lambda: any(e["type"] == "stream.recording.success" for e in h.sim.events))
        [event] = [e for e in h.sim.events if e["type"] == "stream.recording.success"]
    data = event["data"]
    assert data["recording_path"].startswith("file://")
    segment = await archive.store_segment(
        source(room_id=data["room_id"], source_path=data["recording_path"], recording_id=data["recording_id"])
    )
    assert segment.key.endswith(f"_{data['room_id']}_stream.mp4") and segment.size == data["size"]
    assert (folder / segment.key).read_bytes()[4:8] == b"ftyp"


async def test_an_archive_dir_that_is_a_file_stops_start_up(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    archive = LocalArchive(settings(archive_dir=str(tmp_path / "file")))
    with pytest.raises(ConfigError, match="ARCHIVE_DIR"):
        await archive.start()
