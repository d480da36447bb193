"""Per-peer stream recordings (§4.1, §3.6): a real object in moto's S3 or a folder, an event, an asset."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx

from server.hms.simulator import LocalTarget, S3Target
from tests.polling import eventually
from tests.s3 import CREDENTIALS, S3Server
from tests.simulator_support import Harness, running


def _s3(server: S3Server, bucket: str, prefix: str = "rec") -> S3Target:
    return S3Target(
        bucket=bucket,
        prefix=prefix,
        endpoint_url=server.endpoint_url,
        region="us-east-1",
        access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def _events(h: Harness, prefix: str) -> list[dict[str, Any]]:
    return [e for e in h.sim.events if e["type"].startswith(prefix)]


async def _record(h: Harness, room_id: str, user: str, *, seconds: float = 0.0) -> dict[str, Any]:
    """Join, publish video, leave; the joined peer."""
    peer = await h.join(room_id, user)
    await h.media(peer["peer_id"], "publish", video=True, audio=True)
    if seconds:
        await asyncio.sleep(seconds)
    await h.media(peer["peer_id"], "leave")
    return peer


async def test_a_stream_recording_lands_in_s3(s3_server: S3Server) -> None:
    bucket = s3_server.bucket()
    async with running(storage=_s3(s3_server, bucket)) as h:
        room = await h.create_room("exam-1")
        watcher = await h.join(room["id"], "proc-1", "proctor")  # keeps the session open
        peer = await _record(h, room["id"], "cand-1", seconds=0.2)
        await eventually(lambda: bool(_events(h, "stream.recording.success")))
        [event] = _events(h, "stream.recording.")
        data = event["data"]
        day = time.strftime("%Y%m%d", time.gmtime())
        key = f"rec/{room['id']}/{day}/{peer['session_id']}/{peer['peer_id']}/{data['stream_id']}.mp4"
        assert data["recording_path"] == f"s3://{bucket}/{key}"
        assert (data["room_id"], data["session_id"], data["peer_id"], data["user_id"]) == (
            room["id"],
            peer["session_id"],
            peer["peer_id"],
            "cand-1",
        )
        assert (data["type"], data["stream_type"]) == ("regular", "regular")
        assert re.match(r"^[0-9a-f]{24}$", data["recording_id"])
        assert isinstance(data["duration"], int)

        client = s3_server.client()
        try:
            head = await asyncio.to_thread(client.head_object, Bucket=bucket, Key=key)
            body = (await asyncio.to_thread(client.get_object, Bucket=bucket, Key=key))["Body"].read()
        finally:
            client.close()
        assert head["ContentLength"] == data["size"] == len(body)
        assert 100 < len(body) < 1000
        assert body[4:8] == b"ftyp"
        assert peer["peer_id"].encode() in body
        async with httpx.AsyncClient() as plain:
            fetched = await plain.get(data["recording_presigned_url"])
        assert fetched.status_code == 200 and fetched.content == body

        # the same recording as a REST asset
        assets = (
            await h.http.get("/v2/recording-assets", params={"room_id": room["id"]}, headers=h.auth())
        ).json()
        [asset] = assets["data"]
        assert (asset["type"], asset["status"], asset["path"], asset["size"]) == (
            "stream",
            "completed",
            data["recording_path"],
            data["size"],
        )
        assert asset["job_id"] == data["recording_id"]
        assert asset["metadata"] == {
            "stream_id": data["stream_id"],
            "peer_id": peer["peer_id"],
            "user_id": "cand-1",
            "stream_type": "regular",
        }
        got = (await h.http.get(f"/v2/recording-assets/{asset['id']}", headers=h.auth())).json()
        assert got == asset
        presigned = (
            await h.http.get(
                f"/v2/recording-assets/{asset['id']}/presigned-url",
                params={"presign_duration": "600"},
                headers=h.auth(),
            )
        ).json()
        assert (presigned["id"], presigned["path"], presigned["expiry"]) == (asset["id"], asset["path"], 600)
        async with httpx.AsyncClient() as plain:
            assert (await plain.get(presigned["url"])).content == body
        assert (await h.media(watcher["peer_id"], "leave")).status_code == 200
        await asyncio.sleep(0.1)
        assert len(_events(h, "stream.recording.")) == 1  # the proctor published nothing: no recording


async def test_a_stream_recording_lands_in_a_local_folder(tmp_path: Path) -> None:
    async with running(storage=LocalTarget(root=tmp_path, prefix="hms")) as h:
        room = await h.create_room("exam-1")
        peer = await _record(h, room["id"], "cand-1")
        await eventually(lambda: bool(_events(h, "stream.recording.success")))
        data = _events(h, "stream.recording.success")[0]["data"]
        day = time.strftime("%Y%m%d", time.gmtime())
        file = (
            tmp_path
            / "hms"
            / room["id"]
            / day
            / peer["session_id"]
            / peer["peer_id"]
            / f"{data['stream_id']}.mp4"
        )
        assert data["recording_path"] == file.as_uri()
        assert file.read_bytes()[4:8] == b"ftyp"
        assert file.stat().st_size == data["size"]


async def test_the_event_follows_the_leave_after_the_recording_delay() -> None:
    async with running(recording_delay_s=0.3) as h:
        room = await h.create_room("exam-1")
        await _record(h, room["id"], "cand-1")
        left = time.monotonic()
        await asyncio.sleep(0.15)
        assert not _events(h, "stream.recording.")
        await eventually(lambda: bool(_events(h, "stream.recording.success")))
        assert time.monotonic() - left >= 0.3
        types = [e["type"] for e in h.sim.events]
        assert types.index("stream.recording.success") > types.index("session.close.success")


async def test_drop_and_fail_faults(s3_server: S3Server) -> None:
    bucket = s3_server.bucket()
    async with running(storage=_s3(s3_server, bucket)) as h:
        room = await h.create_room("exam-1")
        h.sim.add_fault("recording.drop", user_id="cand-1")
        h.sim.add_fault("recording.fail", user_id="cand-2")
        dropped = await _record(h, room["id"], "cand-1")
        failed = await _record(h, room["id"], "cand-2")
        fine = await _record(h, room["id"], "cand-3")
        await eventually(lambda: len(_events(h, "stream.recording.")) == 2)
        await asyncio.sleep(0.2)  # the dropped one never comes
        events = {e["data"]["user_id"]: e for e in _events(h, "stream.recording.")}
        assert set(events) == {"cand-2", "cand-3"}
        failure = events["cand-2"]
        assert failure["type"] == "stream.recording.failure"
        assert failure["data"]["error_message"] == "INTERNAL_ERROR"
        assert "recording_presigned_url" not in failure["data"]
        assert events["cand-3"]["type"] == "stream.recording.success"

        client = s3_server.client()
        try:
            listed = await asyncio.to_thread(client.list_objects_v2, Bucket=bucket)
        finally:
            client.close()
        keys = [o["Key"] for o in listed.get("Contents", [])]
        assert len(keys) == 1 and fine["peer_id"] in keys[0]

        assets = (await h.http.get("/v2/recording-assets", headers=h.auth())).json()["data"]
        assert sorted((a["metadata"]["user_id"], a["status"]) for a in assets) == [
            ("cand-2", "failed"),
            ("cand-3", "completed"),
        ]
        injected = [(i.kind, i.user_id, i.peer_id, i.room_id) for i in h.sim.injected]
        assert injected == [
            ("recording.drop", "cand-1", dropped["peer_id"], room["id"]),
            ("recording.fail", "cand-2", failed["peer_id"], room["id"]),
        ]


async def test_an_unwritable_bucket_is_a_recording_failure(s3_server: S3Server) -> None:
    async with running(storage=_s3(s3_server, "no-such-bucket-here")) as h:
        room = await h.create_room("exam-1")
        await _record(h, room["id"], "cand-1")
        await eventually(lambda: bool(_events(h, "stream.recording.")), timeout=10)
        [event] = _events(h, "stream.recording.")
        assert event["type"] == "stream.recording.failure"
        assert event["data"]["error_message"] == "CLOUD_ACCESS_ERROR"
        assert not h.sim.injected  # a real failure, not an injected one
