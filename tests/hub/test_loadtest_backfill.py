"""The load tester's simulated candidate fills what 100ms lost (extension E15), against a real hub.

The candidate is the load tester's own user class (load_tests/users/candidate.py) with its page copy
(backfill_page.py): it sits a few seconds, finishes, and keeps its socket open; its recording fails
on the simulator after it left (as `recording.fail` does: at the peer's leave), so the hub asks a
finished page. The page uploads its segments, the hub archives them, and the report's figures
(judge/backfill.py) count the whole loss as recovered.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from load_tests.judge import backfill
from load_tests.scenario.schedule import CandidatePlan
from load_tests.users.candidate import SimCandidate
from load_tests.users.sim_user import Records, Shared
from load_tests.users.token_watch import TokenLog
from tests.archive_support import aws_env  # noqa: F401 (fixture)
from tests.conftest import API_KEY, SECRET, HubFactory, create_event
from tests.hub import test_backfill
from tests.polling import eventually
from tests.s3 import S3Server, s3_server  # noqa: F401 (fixture)
from tests.servers import HubProcess
from tests.sitting import add_fault

AUTH = {"Authorization": f"Bearer {API_KEY}"}
FAST = {**test_backfill.FAST, "BACKFILL_RELEASE_STEP_S": "0"}  # released as soon as the release point moves


def _shared(hub_http: str, ws: str, event: str) -> Shared:
    config: dict[str, Any] = {
        "ws_url": ws,
        "event_id": event,
        "secret": SECRET,
        "session_ttl_s": 600,
        "t0": time.time(),
        "media_url": f"{hub_http}/hms-sim",
        "hub_url": hub_http,
        "seed": 7,
    }
    return Shared(config, Records(), TokenLog())


@pytest.mark.parametrize("archive", ["local", "s3"])
async def test_a_simulated_candidate_uploads_what_a_failed_recording_lost(
    hub_factory: HubFactory, tmp_path: Path, archive: str, request: pytest.FixtureRequest
) -> None:
    """Into the local archive (the hub's own upload URL) or a bucket (a presigned URL elsewhere)."""
    env = {**FAST, "ARCHIVE_DIR": str(tmp_path)}
    if archive == "s3":
        request.getfixturevalue("aws_env")
        s3: S3Server = request.getfixturevalue("s3_server")
        env.update(S3_BUCKET=(bucket := s3.bucket()), S3_ENDPOINT_URL=s3.endpoint_url)
    archived = await _fill_a_failed_recording(hub_factory(**env), f"lt-bf-{archive}")
    if archive == "local":
        assert all((tmp_path / s["key"]).is_file() for s in archived)
        return
    client = s3.client()
    try:
        assert all(client.head_object(Bucket=bucket, Key=s["key"])["ContentLength"] > 0 for s in archived)
    finally:
        client.close()


async def _fill_a_failed_recording(hub: HubProcess, event: str) -> list[dict[str, Any]]:
    """A candidate of the load tester sits 3 s, finishes, and fills its failed recording; the hub's
    segments as its timeline lists them."""
    create_event(hub, event, room_size=5, expected_candidates=1, recording=True)
    async with httpx.AsyncClient(base_url=hub.http, timeout=30) as http:
        await add_fault(http, kind="recording.fail", user_id="c1", count=1)
        shared = _shared(hub.http, hub.ws, event)
        candidate = SimCandidate(shared, CandidatePlan("c1", arrive_s=0.0, finish_s=3.0, codec="json"))
        candidate.copy.segment_ms = 1000  # several segments in a short sitting
        sitting = asyncio.get_running_loop().create_task(candidate.run())
        try:
            await eventually(lambda: candidate.finished, timeout=20, what="the candidate finished")
            assert not candidate.stopped  # still open for what the hub may ask after the sitting
            # it closes by itself once the hub has what it asked for and released the rest
            await eventually(sitting.done, timeout=30, what="the page settled and closed")
            timeline = (await http.get(f"/api/v1/events/{event}/candidates/c1/timeline", headers=AUTH)).json()
            row = next(
                r
                for r in (await http.get(f"/api/v1/events/{event}/report", headers=AUTH)).json()["candidates"]
                if r["candidate_id"] == "c1"
            )
        finally:
            candidate.stop()
            sitting.cancel()
            await shared.aclose()
    assert row["recordings_failed"] == 1 and row["recorded_pct"] == 0.0
    (gap,) = [g for g in timeline["gaps"] if g["kind"] == "recording.failed"]
    assert gap["backfilled"] is True
    archived = shared.records.backfill
    assert len(archived) >= 3 and {s["candidate_id"] for s in archived} == {"c1"}
    assert {s["state"] for s in timeline["backfill"]["segments"]} == {"archived"}
    assert len(timeline["backfill"]["segments"]) == len(archived)
    figures = backfill.figures(
        {"c1": candidate.page_summary()},
        {"c1": timeline},
        archived,
        min_s=0.5,
        slack_s=0.1,
        exam_end=time.time(),
    )
    assert figures["backfill_coverage"] == 1.0
    assert figures["backfill_lost_s"] > 2.0 and figures["backfill_segments"] == len(archived)
    assert figures["backfill_bytes"] == sum(s["put_bytes"] for s in archived) > 0
    return list(timeline["backfill"]["segments"])
