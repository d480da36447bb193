"""From a candidate's sitting to its archive: the simulator records to S3 (moto over HTTP), its webhook
reaches the hub, and the recording lands in the prescribed layout with a manifest and a working
presigned URL; a failed recording is in the manifest too."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import orjson

from tests.conftest import API_KEY, HubFactory, create_event
from tests.polling import eventually
from tests.s3 import CREDENTIALS, S3Server
from tests.sitting import add_fault, sit

AUTH = {"Authorization": f"Bearer {API_KEY}"}
AWS = {**CREDENTIALS, "AWS_EC2_METADATA_DISABLED": "true", "AWS_DEFAULT_REGION": "us-east-1"}
LAYOUT = re.compile(r"^exams/arch-flow/(c\d)/\d{8}T\d{6}Z_[^_/]+_stream\.mp4$")


async def test_recordings_land_in_the_layout_with_manifests_and_presigned_urls(
    hub_factory: HubFactory, s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = s3_server.bucket()
    hub = hub_factory(
        S3_BUCKET=bucket,
        S3_ENDPOINT_URL=s3_server.endpoint_url,
        S3_PREFIX="exams",
        ARCHIVE_DIR=str(tmp_path),
        HMS_SIM_RECORDING_DELAY_S="0.2",
        RECORDING_DEADLINE_S="2",
        **AWS,
    )
    event = "arch-flow"
    create_event(hub, event, room_size=5, expected_candidates=3)
    async with httpx.AsyncClient(base_url=hub.http, timeout=30) as media:
        await add_fault(media, kind="recording.fail", user_id="c3", count=1)
        candidates = [await sit(hub, event, f"c{i}", media) for i in (1, 2, 3)]
        for candidate in candidates:
            await candidate.finish()

        def manifests() -> dict[str, dict]:  # type: ignore[type-arg]
            s3 = s3_server.client()
            found = {}
            for c in ("c1", "c2", "c3"):
                try:
                    body = s3.get_object(Bucket=bucket, Key=f"exams/{event}/{c}/manifest.json")["Body"].read()
                except s3.exceptions.NoSuchKey:
                    continue
                found[c] = orjson.loads(body)
            return found

        await eventually(
            lambda: (
                all(len(m["segments"]) == 1 for c, m in manifests().items() if c != "c3")
                and len(manifests()) == 3
                and manifests()["c3"]["failed"]
            ),
            timeout=30,
            what="three manifests, two with a segment, one with a failed recording",
        )
        client = s3_server.client()
        keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="exams/")["Contents"])
        videos = [k for k in keys if k.endswith(".mp4")]
        assert len(videos) == 2 and all(LAYOUT.match(k) for k in videos), keys
        assert {LAYOUT.match(k).group(1) for k in videos} == {"c1", "c2"}  # type: ignore[union-attr]

        answer = await media.get(f"/api/v1/events/{event}/candidates/c1/recordings", headers=AUTH)
        assert answer.status_code == 200, answer.text
        (segment,) = answer.json()["segments"]
        assert segment["key"] in videos and segment["duration_s"] >= 0
        original = client.get_object(Bucket=bucket, Key=segment["key"])["Body"].read()
        downloaded = httpx.get(segment["url"], timeout=10)
        assert downloaded.status_code == 200 and downloaded.content == original
        assert original.startswith(b"\x00\x00\x00") and b"ftyp" in original[:16]

        (failed,) = manifests()["c3"]["failed"]
        assert failed["peer_id"] == candidates[2].peer_id
        assert manifests()["c3"]["gaps"][0]["kind"] == "recording.failed"
