"""`GET /api/v1/events/{e}/candidates/{c}/recordings` on real hubs: a local folder, and S3 (moto)."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from server.auth import Role, mint_session
from server.config import Settings
from server.hms.simulator.recorder import fake_mp4
from server.recording.archive.contract import Archive, Segment
from server.recording.archive.factory import build_archive
from tests.archive_support import SECRET, settings, source
from tests.s3 import CREDENTIALS, S3Server
from tests.servers import HubProcess, start_hub

API_KEY = "recordings-api-key-" + "k" * 20
BODY = fake_mp4({"peer_id": "peer-1", "stream_id": "stream-1"})
AWS = {**CREDENTIALS, "AWS_EC2_METADATA_DISABLED": "true", "AWS_DEFAULT_REGION": "us-east-1"}

_ids = itertools.count()


@dataclass
class Setup:
    hub: HubProcess
    settings: Settings
    folder: Path
    s3: S3Server | None = None


@pytest.fixture(scope="module", params=["local", "s3"])
def setup(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server
) -> Iterator[Setup]:
    folder = tmp_path_factory.mktemp("recordings")
    env = {"HUB_SECRET": SECRET, "HUB_API_KEY": API_KEY, "ARCHIVE_DIR": str(folder), "LOG_LEVEL": "WARNING"}
    fields: dict[str, str] = {"archive_dir": str(folder)}
    if request.param == "s3":
        bucket = s3_server.bucket()
        env |= {"S3_BUCKET": bucket, "S3_ENDPOINT_URL": s3_server.endpoint_url, **AWS}
        fields |= {"s3_bucket": bucket, "s3_endpoint_url": s3_server.endpoint_url}
    hub = start_hub(env)
    yield Setup(hub, settings(**fields), folder, s3_server if request.param == "s3" else None)
    hub.stop()


@pytest.fixture
async def archive(setup: Setup, aws_env: None) -> AsyncIterator[Archive]:
    """The archive the hub uses, opened in the test process."""
    built = build_archive(setup.settings)
    yield built
    await built.aclose()


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def session(role: Role, event_id: str) -> str:
    return mint_session(SECRET, user_id=f"{role}-1", event_id=event_id, role=role, now=time.time(), ttl_s=600)


async def new_event(http: httpx.AsyncClient) -> str:
    event_id = f"rec-{time.monotonic_ns()}-{next(_ids)}"
    answer = await http.post(
        "/api/v1/events", json={"event_id": event_id, "name": "Exam"}, headers=bearer(API_KEY)
    )
    assert answer.status_code == 201, answer.text
    return event_id


async def archived(setup: Setup, archive: Archive, event_id: str, candidate_id: str) -> Segment:
    """One recording stored the way the monitor does it, and the candidate's manifest."""
    file = setup.folder / "100ms" / event_id / "stream.mp4"
    file.parent.mkdir(parents=True)
    file.write_bytes(BODY)
    src_path = file.as_uri()
    if setup.s3 is not None:
        client = setup.s3.client()
        client.put_object(Bucket=setup.settings.s3_bucket, Key=f"100ms/{event_id}.mp4", Body=BODY)
        client.close()
        src_path = f"s3://{setup.settings.s3_bucket}/100ms/{event_id}.mp4"
    segment = await archive.store_segment(
        source(event_id=event_id, candidate_id=candidate_id, source_path=src_path, size=len(BODY))
    )
    broken = {"key": 7}
    manifest = {"name": "Asha", "segments": [segment.to_dict(), broken], "gaps": [], "flags": []}
    await archive.write_manifest(event_id, candidate_id, manifest)
    return segment


async def test_readers_get_segments_with_working_urls(setup: Setup, archive: Archive) -> None:
    async with httpx.AsyncClient(base_url=setup.hub.http, timeout=10) as http:
        event_id = await new_event(http)
        segment = await archived(setup, archive, event_id, "cand 1")
        path = f"/api/v1/events/{event_id}/candidates/cand%201/recordings"
        for credential in (API_KEY, session("proctor", event_id), session("admin", event_id)):
            answer = await http.get(path, headers=bearer(credential))
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["event_id"] == event_id and body["candidate_id"] == "cand 1"
            assert body["manifest_key"] == f"proctorhub/{event_id}/cand~201/manifest.json"
            [item] = body["segments"]  # the malformed entry is left out
            url = item.pop("url")
            assert item == segment.to_dict()
            assert url.startswith("http")
            async with httpx.AsyncClient() as plain:
                download = await plain.get(url)
            assert download.status_code == 200 and download.content == BODY


async def test_others_are_refused(setup: Setup, archive: Archive) -> None:
    async with httpx.AsyncClient(base_url=setup.hub.http, timeout=10) as http:
        event_id = await new_event(http)
        await archived(setup, archive, event_id, "cand-1")
        path = f"/api/v1/events/{event_id}/candidates/cand-1/recordings"
        assert (await http.get(path)).status_code == 401
        assert (await http.get(path, headers=bearer("not-a-token"))).status_code == 401
        for credential in (
            session("candidate", event_id),
            session("proctor", "another-event"),
            session("admin", "another-event"),
        ):
            answer = await http.get(path, headers=bearer(credential))
            assert answer.status_code == 403 and answer.json()["error"]["code"] == "forbidden"
        for missing in (
            f"/api/v1/events/{event_id}/candidates/nobody/recordings",
            "/api/v1/events/no-such-event/candidates/cand-1/recordings",
        ):
            answer = await http.get(missing, headers=bearer(API_KEY))
            assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"


async def test_an_unreadable_manifest_is_503_not_a_traceback(setup: Setup, archive: Archive) -> None:
    async with httpx.AsyncClient(base_url=setup.hub.http, timeout=10) as http:
        event_id = await new_event(http)
        key = await archive.write_manifest(event_id, "cand-1", {"segments": []})
        if setup.s3 is None:
            (setup.folder / key).write_bytes(b"{not json")
        else:
            client = setup.s3.client()
            client.put_object(Bucket=setup.settings.s3_bucket, Key=key, Body=b"{not json")
            client.close()
        path = f"/api/v1/events/{event_id}/candidates/cand-1/recordings"
        answer = await http.get(path, headers=bearer(API_KEY))
        assert answer.status_code == 503 and answer.json()["error"]["code"] == "unavailable"
        assert "Traceback" not in answer.text
