"""S3Archive against moto's S3 server over HTTP: server-side copies into the layout, once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.hms.simulator import S3Target
from server.hms.simulator.recorder import fake_mp4
from server.recording.archive.contract import ArchiveError, Segment, SourceRefused
from server.recording.archive.factory import build_archive
from server.recording.archive.s3 import IDENTITY, S3Archive
from tests.archive_support import settings, source
from tests.polling import eventually
from tests.s3 import CREDENTIALS, S3Server
from tests.simulator_support import running

SIM_KEY = "100ms/665f1b2c3d4e5f6a7b8c9d0e/20240610/665f1b2c3d4e5f6a7b8c9d0f/peer-1/stream-1.mp4"
BODY = fake_mp4({"peer_id": "peer-1", "stream_id": "stream-1"})


@pytest.fixture
async def archive(s3_server: S3Server, aws_env: None, tmp_path: Path) -> AsyncIterator[S3Archive]:
    config = settings(
        s3_bucket=s3_server.bucket(), s3_endpoint_url=s3_server.endpoint_url, archive_dir=str(tmp_path)
    )
    built = build_archive(config)
    assert isinstance(built, S3Archive)
    await built.start()
    yield built
    await built.aclose()


def put(s3_server: S3Server, bucket: str, key: str, body: bytes) -> None:
    client = s3_server.client()
    try:
        client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="video/mp4")
    finally:
        client.close()


def head(s3_server: S3Server, bucket: str, key: str) -> dict[str, Any]:
    client = s3_server.client()
    try:
        return dict(client.head_object(Bucket=bucket, Key=key))
    finally:
        client.close()


def listing(s3_server: S3Server, bucket: str) -> list[str]:
    client = s3_server.client()
    try:
        return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))
    finally:
        client.close()


async def download(url: str) -> bytes:
    async with httpx.AsyncClient() as client:
        answer = await client.get(url)
    assert answer.status_code == 200, answer.text
    return answer.content


async def test_a_recording_is_copied_into_the_layout_once(archive: S3Archive, s3_server: S3Server) -> None:
    put(s3_server, archive.bucket, SIM_KEY, BODY)
    src = source(source_path=f"s3://{archive.bucket}/{SIM_KEY}", size=len(BODY))
    segment = await archive.store_segment(src)
    expected = "proctorhub/exam-1/cand-1/20240610T061320Z_665f1b2c3d4e5f6a7b8c9d0e_stream.mp4"
    assert segment == Segment.of(src, expected, len(BODY))
    stored = head(s3_server, archive.bucket, expected)
    assert stored["ContentType"] == "video/mp4" and stored["ContentLength"] == len(BODY)
    assert await download(await archive.url(expected, expires_s=60)) == BODY
    # stored again (a retried webhook): nothing is copied, so it works without the source
    client = s3_server.client()
    client.delete_object(Bucket=archive.bucket, Key=SIM_KEY)
    client.close()
    assert await archive.store_segment(src) == segment
    assert listing(s3_server, archive.bucket) == [expected]


async def test_two_recordings_in_the_same_second_keep_both(archive: S3Archive, s3_server: S3Server) -> None:
    other = b"another recording of the same candidate"
    put(s3_server, archive.bucket, "100ms/a.mp4", BODY)
    put(s3_server, archive.bucket, "100ms/b.mp4", other)
    first = source(source_path=f"s3://{archive.bucket}/100ms/a.mp4", recording_id="rec-a")
    second = replace(first, source_path=f"s3://{archive.bucket}/100ms/b.mp4", recording_id="rec-b")
    a, b = await archive.store_segment(first), await archive.store_segment(second)
    assert a.key != b.key and b.key.startswith(a.key.removesuffix(".mp4") + "_")
    assert await download(await archive.url(a.key)) == BODY
    assert await download(await archive.url(b.key)) == other
    assert (await archive.store_segment(second)).key == b.key
    assert (await archive.store_segment(first)).key == a.key
    assert len(listing(s3_server, archive.bucket)) == 4


async def test_large_objects_take_a_multipart_copy(archive: S3Archive, s3_server: S3Server) -> None:
    body = bytes(range(256)) * (6 * 4096)  # 6 MiB, over a lowered copy_object limit of 5 MiB
    put(s3_server, archive.bucket, SIM_KEY, body)
    archive.copy_object_limit = 5 * 1024 * 1024
    segment = await archive.store_segment(source(source_path=f"s3://{archive.bucket}/{SIM_KEY}"))
    stored = head(s3_server, archive.bucket, segment.key)
    assert "-" in stored["ETag"]  # a multipart object
    assert stored["Metadata"][IDENTITY] and stored["ContentType"] == "video/mp4"
    assert segment.size == len(body) and await download(await archive.url(segment.key)) == body


async def test_a_source_only_reachable_by_its_presigned_url_is_streamed(
    archive: S3Archive, s3_server: S3Server
) -> None:
    elsewhere = s3_server.bucket()
    put(s3_server, elsewhere, SIM_KEY, BODY)
    client = s3_server.client()
    presigned = client.generate_presigned_url("get_object", Params={"Bucket": elsewhere, "Key": SIM_KEY})
    client.close()
    src = source(source_path=f"s3://no-such-bucket-here/{SIM_KEY}", presigned_url=presigned)
    with pytest.raises(SourceRefused, match="not the recording bucket"):  # neither is 100ms's bucket
        await archive.store_segment(src)
    # 100ms uploads to `elsewhere`, which this client reads only through the presigned URL
    config = settings(s3_bucket=archive.bucket, s3_endpoint_url=s3_server.endpoint_url)
    reader = S3Archive(replace(config, hms_recording_bucket=elsewhere))
    try:
        segment = await reader.store_segment(src)
    finally:
        await reader.aclose()
    assert await download(await archive.url(segment.key)) == BODY
    assert head(s3_server, archive.bucket, segment.key)["ContentType"] == "video/mp4"


async def test_a_file_source_is_uploaded(archive: S3Archive, tmp_path: Path) -> None:
    file = tmp_path / "100ms" / "r" / "x.webm"
    file.parent.mkdir(parents=True)
    file.write_bytes(BODY)
    segment = await archive.store_segment(source(source_path=file.as_uri()))
    assert segment.key.endswith("_stream.webm") and segment.size == len(BODY)
    assert await download(await archive.url(segment.key)) == BODY


async def test_failures_raise_archive_error_with_the_key(archive: S3Archive, tmp_path: Path) -> None:
    with pytest.raises(ArchiveError) as missing:
        await archive.store_segment(source(source_path="s3://no-such-bucket-here/x.mp4"))
    assert missing.value.key.endswith("_stream.mp4") and "no-such-bucket-here" in str(missing.value)
    outside = tmp_path.parent / "outside.mp4"
    outside.write_bytes(b"not a recording")
    with pytest.raises(SourceRefused, match=r"outside .*ARCHIVE_DIR/HMS_RECORDING_PREFIX"):
        await archive.store_segment(source(source_path=outside.as_uri()))
    with pytest.raises(ArchiveError, match="presigned URL"):
        await archive.store_segment(source(source_path="https://example.invalid/x.mp4"))
    with pytest.raises(ArchiveError, match="started_at"):
        await archive.store_segment(source(started_at=float("nan")))


async def test_the_manifest_round_trips(archive: S3Archive, s3_server: S3Server) -> None:
    assert await archive.read_manifest("exam-1", "cand-1") is None
    segment = Segment.of(source(), "proctorhub/exam-1/cand-1/x.mp4", 3)
    manifest = {"name": "Zoë", "updated_at": 1, "segments": [segment.to_dict()], "gaps": [], "flags": []}
    key = await archive.write_manifest("exam-1", "cand-1", manifest)
    assert key == "proctorhub/exam-1/cand-1/manifest.json"
    assert head(s3_server, archive.bucket, key)["ContentType"] == "application/json"
    assert await archive.read_manifest("exam-1", "cand-1") == {
        **manifest,
        "event_id": "exam-1",
        "candidate_id": "cand-1",
    }
    with pytest.raises(ArchiveError, match="JSON"):
        await archive.write_manifest("exam-1", "cand-1", {"bad": object()})


async def test_a_simulator_recording_lands_in_the_layout(archive: S3Archive, s3_server: S3Server) -> None:
    """The in-process simulator records into the same bucket under 100ms/; its webhook feeds the archive."""
    target = S3Target(
        bucket=archive.bucket,
        prefix="100ms",
        endpoint_url=s3_server.endpoint_url,
        access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    async with running(storage=target) as h:
        room = await h.create_room("exam-1-room")
        await h.join(room["id"], "proctor-1", "proctor")
        peer = await h.join(room["id"], "cand 7")
        await h.media(peer["peer_id"], "publish", video=True, audio=True)
        await h.media(peer["peer_id"], "leave")
        await eventually(lambda: any(e["type"] == "stream.recording.success" for e in h.sim.events))
        [event] = [e for e in h.sim.events if e["type"] == "stream.recording.success"]
    data = event["data"]
    src = source(
        candidate_id=data["user_id"],
        room_id=data["room_id"],
        session_id=data["session_id"],
        peer_id=data["peer_id"],
        recording_id=data["recording_id"],
        source_path=data["recording_path"],
        presigned_url=data["recording_presigned_url"],
        size=data["size"],
    )
    segment = await archive.store_segment(src)
    assert segment.key == f"proctorhub/exam-1/cand~207/20240610T061320Z_{data['room_id']}_stream.mp4"
    assert await download(await archive.url(segment.key)) == await download(data["recording_presigned_url"])
