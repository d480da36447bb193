"""Browser backfill end to end on a real hub (extension E15): a Python page uploads what 100ms lost.

The page here is load_tests/backfill/page.py: it holds generated WebM segments for its whole sitting
and answers `backfill.request` as the candidate page does, through the hub's HTTP endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from load_tests.backfill.page import LocalSegment, Uploader, overlapping, recorded
from tests.archive_support import aws_env  # noqa: F401 (fixture)
from tests.client import login, token
from tests.conftest import API_KEY, SECRET, HubFactory, create_event
from tests.polling import eventually
from tests.s3 import S3Server, s3_server  # noqa: F401 (fixture)
from tests.servers import HubProcess
from tests.sitting import Candidate, add_fault, sit, watcher

BAD_FRAME = 4400
AUTH = {"Authorization": f"Bearer {API_KEY}"}
FAST = {
    "HMS_SIM_RECORDING_DELAY_S": "0.2",
    "RECORDING_GAP_THRESHOLD_S": "1",
    "RECORDING_DEADLINE_S": "1",
    "BACKFILL_MIN_S": "0.5",
    "BACKFILL_SLACK_S": "0.1",
}


async def _request(candidate: Candidate, since_ms: int, timeout: float = 30) -> dict[str, Any]:
    """The open request that covers the page's time from `since_ms` on for a second or more.

    Requests for time that 100ms's word later covered (a join's webhook still on its way) come and go
    before it: the page's view is every request less every cancel, in the order received."""
    client = candidate.client
    held: dict[str, dict[str, Any]] = {}

    def see(message: dict[str, Any]) -> None:
        if message["type"] == "backfill.request":
            held[message["data"]["request_id"]] = message["data"]
        elif message["type"] == "backfill.cancel":
            held.pop(message["data"]["request_id"], None)

    def found() -> dict[str, Any] | None:
        return next((r for r in held.values() if r["from"] <= since_ms and r["to"] >= since_ms + 1000), None)

    for message in client.skipped:
        see(message)
    client.skipped.clear()
    deadline = asyncio.get_running_loop().time() + timeout
    while (request := found()) is None:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, f"no request covering {since_ms}; held {held}"
        see(await client.recv(timeout=left))
    return dict(request)


async def _failed_request(
    hub: HubProcess, http: httpx.AsyncClient, event: str, user: str
) -> tuple[Candidate, dict[str, Any]]:
    """A failed sitting and the request that asks for it, once the failure is known."""
    admin = await watcher(hub, "admin", "admin", event)
    candidate = await _failed_sitting(hub, http, event, user)
    await eventually(lambda: user in admin.opened("recording.failed"), timeout=30, what="the failure alerted")
    failure = admin.opened("recording.failed")[user].data
    return candidate, await _request(candidate, failure["started_at"])


async def _failed_sitting(hub: HubProcess, http: httpx.AsyncClient, event: str, user: str) -> Candidate:
    """A candidate whose 100ms recording fails, sitting about two seconds."""
    create_event(hub, event, room_size=5, expected_candidates=1)
    await add_fault(http, kind="recording.fail", user_id=user, count=1)
    candidate = await sit(hub, event, user, http)
    await asyncio.sleep(2)  # the sitting itself: the time the page recorded and 100ms lost
    await candidate.finish()
    return candidate


@contextlib.asynccontextmanager
async def _asked(
    hub: HubProcess, event: str
) -> AsyncIterator[tuple[httpx.AsyncClient, Candidate, dict[str, Any], Uploader]]:
    """c1's failed sitting in `event`, the request that asks for it, and c1's page to answer it."""
    async with httpx.AsyncClient(base_url=hub.http, timeout=30) as http:
        candidate, request = await _failed_request(hub, http, event, "c1")
        yield http, candidate, request, _page(http, event)


def _page(http: httpx.AsyncClient, event: str) -> Uploader:
    """Candidate c1's page, uploading with its own session token."""
    return Uploader(http, event, "c1", token(SECRET, "c1", "candidate", event))


async def _report_row(http: httpx.AsyncClient, event: str, user: str) -> dict[str, Any]:
    rows = (await http.get(f"/api/v1/events/{event}/report", headers=AUTH)).json()["candidates"]
    return dict(next(r for r in rows if r["candidate_id"] == user))


async def _upload_all(
    page: Uploader, request: dict[str, Any], held: list[LocalSegment]
) -> list[dict[str, Any]]:
    return [
        await page.send(request["request_id"], s) for s in overlapping(held, request["from"], request["to"])
    ]


async def _backfill_a_failed_recording(
    hub: HubProcess, event: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The story every store and archive must tell the same: fail, request, upload, 100 %."""
    async with httpx.AsyncClient(base_url=hub.http, timeout=30) as http:
        admin = await watcher(hub, "admin", "admin", event)
        candidate, request = await _failed_request(hub, http, event, "c1")
        held = recorded(request["from"] - 500, request["to"] + 500)
        page = _page(http, event)
        answers = await _upload_all(page, request, held)
        assert {a["state"] for a in answers} == {"archived"}
        cancel = await candidate.client.expect("backfill.cancel", timeout=30)
        assert cancel["data"] == {"request_id": request["request_id"]}

        async def full() -> dict[str, Any] | None:
            row = await _report_row(http, event, "c1")
            return row if row["coverage_pct"] == 100.0 else None

        row = await eventually(full, timeout=30, what="the report's coverage at 100 %")
        await eventually(
            lambda: "c1" in admin.closed("recording.failed"),
            timeout=30,
            what="the failed recording's alert closed",
        )
        closed = admin.closed("recording.failed")["c1"].data
        assert closed["detail"]["backfilled"] is True and closed["detail"]["cause"] == "recording_failed"
        timeline = (await http.get(f"/api/v1/events/{event}/candidates/c1/timeline", headers=AUTH)).json()
    assert row["recorded_pct"] == 0.0 and row["backfilled_pct"] == 100.0 and row["recordings_failed"] == 1
    (gap,) = [g for g in timeline["gaps"] if g["kind"] == "recording.failed"]
    assert gap["backfilled"] is True and gap["backfilled_s"] > 0
    assert timeline["intervals"]["backfilled"]
    (asked,) = [r for r in timeline["backfill"]["requests"] if r["request_id"] == request["request_id"]]
    assert (asked["state"], asked["cause"]) == ("satisfied", "recording_failed")
    assert {s["state"] for s in timeline["backfill"]["segments"]} == {"archived"}
    return answers, request


def _manifest(root: Path, event: str, candidate: str) -> dict[str, Any]:
    found = list(root.rglob(f"{event}/{candidate}/manifest.json"))
    return dict(orjson.loads(found[0].read_bytes())) if found else {}


async def test_a_failed_recording_is_backfilled_into_the_local_archive(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    hub = hub_factory(ARCHIVE_DIR=str(tmp_path), **FAST)
    answers, _ = await _backfill_a_failed_recording(hub, "bf-local")
    keys = [a["key"] for a in answers]
    for key in keys:
        assert key.endswith("_backfill.webm") and "/bf-local/c1/" in key
        assert (tmp_path / key).is_file()

    def listed() -> list[dict[str, Any]]:
        return [
            s for s in _manifest(tmp_path, "bf-local", "c1").get("segments", []) if s["kind"] == "backfill"
        ]

    segments = await eventually(
        lambda: len(listed()) == len(keys) and listed(), timeout=30, what="the manifest"
    )
    assert sorted(s["key"] for s in segments) == sorted(keys)


async def test_a_wrong_checksum_is_refused_then_the_right_bytes_are_taken(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    event, hub = "bf-checksum", hub_factory(ARCHIVE_DIR=str(tmp_path), **FAST)
    async with _asked(hub, event) as (_, _candidate, request, page):
        first = overlapping(recorded(request["from"], request["to"]), request["from"], request["to"])[0]
        damaged = first.data[:-1] + bytes([first.data[-1] ^ 0xFF])
        announced = (await page.announce(request["request_id"], first)).json()
        assert announced["state"] == "upload" and announced["upload"]["method"] == "PUT"
        assert (await page.put(announced["upload"], damaged)).status_code == 200
        refused = await page.complete(announced["segment_id"])
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "segment_rejected"
        assert "sha256" in refused.json()["error"]["message"]
        assert not list(tmp_path.rglob("*_backfill.webm"))  # the bad object is gone
        again = (await page.announce(request["request_id"], first)).json()
        assert again["segment_id"] == announced["segment_id"] and again["state"] == "upload"
        assert (await page.put(again["upload"], first.data)).status_code == 200
        done = await page.complete(again["segment_id"])
        assert done.status_code == 200 and done.json()["state"] == "archived"
        # idempotent: the same segment announced again is archived already, at the same key
        repeat = (await page.announce(request["request_id"], first)).json()
        assert repeat == {"segment_id": again["segment_id"], "state": "archived", "key": done.json()["key"]}
        assert (await page.complete(again["segment_id"])).json() == done.json()


async def test_bad_announcements_and_callers_are_refused(hub_factory: HubFactory, tmp_path: Path) -> None:
    hub = hub_factory(ARCHIVE_DIR=str(tmp_path), BACKFILL_MAX_BYTES="100000", **FAST)
    event = "bf-refusals"
    async with _asked(hub, event) as (http, candidate, request, _uploader):
        segment = recorded(request["from"], request["to"])[0]
        body = segment.announcement(request["request_id"])
        url = f"/api/v1/events/{event}/candidates/c1/backfill"
        own = {"Authorization": f"Bearer {token(SECRET, 'c1', 'candidate', event)}"}
        cases = [
            ({**body, "size": 200_000}, own, 422, "invalid"),
            ({**body, "content_type": "video/mp4"}, own, 422, "invalid"),
            (
                {**body, "start": body["start"] - 3_600_000, "end": body["start"] - 3_599_000},
                own,
                422,
                "invalid",
            ),
            ({**body, "request_id": "bf-1"}, own, 409, "request_closed"),
            (body, {"Authorization": f"Bearer {token(SECRET, 'c2', 'candidate', event)}"}, 403, "forbidden"),
            (body, AUTH, 403, "forbidden"),
            (body, {}, 401, "unauthenticated"),
        ]
        for sent, headers, status, code in cases:
            answer = await http.post(url, json=sent, headers=headers)
            assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), (sent, answer.text)
        good = (await http.post(url, json=body, headers=own)).json()
        forged = good["upload"]["url"].replace("sig=", "sig=0")
        assert (
            await http.put(forged, content=segment.data, headers=good["upload"]["headers"])
        ).status_code == 403
        wrong_type = await http.put(
            good["upload"]["url"], content=segment.data, headers={"Content-Type": "text/html"}
        )
        assert wrong_type.status_code == 415
        too_big = await http.put(
            good["upload"]["url"], content=segment.data + b"x", headers=good["upload"]["headers"]
        )
        assert too_big.status_code == 413
        unknown = await http.post(f"{url}/nope/complete", headers=own)
        assert unknown.status_code == 404
        bad_local = {
            "room_id": None,
            "joined": False,
            "video": False,
            "audio": False,
            "local": {"held_s": "x"},
        }
        await candidate.client.send("media.status", bad_local)
        assert await candidate.client.closed_with(timeout=10) == BAD_FRAME  # as for any bad field


async def test_a_late_recording_cancels_the_request(hub_factory: HubFactory, tmp_path: Path) -> None:
    hub = hub_factory(ARCHIVE_DIR=str(tmp_path), RECORDING_RECONCILE_S="3600", **FAST)
    event = "bf-late"
    create_event(hub, event, room_size=5, expected_candidates=1)
    async with httpx.AsyncClient(base_url=hub.http, timeout=30) as http:
        # 100ms's answer is late: its webhook comes after the deadline, and its asset API is down meanwhile
        await add_fault(
            http, kind="webhook.delay", event_type="stream.recording", user_id="c1", seconds=6, count=1
        )
        await add_fault(http, kind="rest.500", path_prefix="/v2/recording-assets")
        candidate = await sit(hub, event, "c1", http)
        await asyncio.sleep(2)
        await candidate.finish()
        admin = await watcher(hub, "admin", "admin", event)
        await eventually(
            lambda: "c1" in admin.opened("recording.missing"), timeout=30, what="declared missing"
        )
        request = await _request(candidate, admin.opened("recording.missing")["c1"].data["started_at"])
        cancel = await candidate.client.expect("backfill.cancel", timeout=30)
        assert cancel["data"] == {"request_id": request["request_id"]}
        page = _page(http, event)
        late = await page.announce(request["request_id"], recorded(request["from"], request["to"])[0])
        assert late.status_code == 409 and late.json()["error"]["code"] == "request_closed"
        row = await _report_row(http, event, "c1")
    assert row["recorded_pct"] > 0 and row["backfilled_pct"] == 0.0


async def test_a_reconnecting_page_is_asked_again(hub_factory: HubFactory, tmp_path: Path) -> None:
    hub = hub_factory(ARCHIVE_DIR=str(tmp_path), **FAST)
    event = "bf-reconnect"
    async with _asked(hub, event) as (_, candidate, request, _uploader):
        await candidate.client.close()
        again, _ = await login(hub.ws, token(SECRET, "c1", "candidate", event), timeout=30)
        resent = await again.expect("backfill.request", timeout=30)
        assert resent["data"] == request
        released = await again.expect("backfill.release", timeout=30)
        assert released["data"]["until"] >= request["from"]


async def _holds_from(candidate: Candidate, since_ms: int) -> None:
    """The page says the oldest time it still holds (`media.status.local.from`)."""
    data = {"peer_id": candidate.peer_id, "room_id": candidate.room_id, "joined": False, "video": False}
    local = {"held_s": 30, "from": since_ms, "quota_short": False}
    await candidate.client.send("media.status", {**data, "audio": False, "local": local})


async def test_the_page_is_not_asked_for_time_it_no_longer_holds(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    event, hub = "bf-held", hub_factory(ARCHIVE_DIR=str(tmp_path), **FAST)
    async with _asked(hub, event) as (http, candidate, request, page):
        rid, middle = request["request_id"], (request["from"] + request["to"]) // 2
        await _holds_from(candidate, middle)
        trimmed = await candidate.client.expect(
            "backfill.request", lambda m: m["data"]["from"] != request["from"], timeout=30
        )
        assert trimmed["data"] == {**request, "from": middle}  # the same request, from where the copy begins
        await _holds_from(candidate, request["to"] + 1000)
        cancel = await candidate.client.expect("backfill.cancel", timeout=30)
        assert cancel["data"] == {"request_id": rid}
        late = await page.announce(rid, recorded(request["from"], request["to"])[0])
        assert late.status_code == 409 and late.json()["error"]["code"] == "request_closed"
        timeline = (await http.get(f"/api/v1/events/{event}/candidates/c1/timeline", headers=AUTH)).json()
        row = await _report_row(http, event, "c1")
    (asked,) = [r for r in timeline["backfill"]["requests"] if r["request_id"] == rid]
    assert asked == {**request, "state": "lost", "cause": "recording_failed"}
    (gap,) = [g for g in timeline["gaps"] if g["kind"] == "recording.failed"]
    assert gap["backfilled"] is False and gap["cause"] == "recording_failed"
    assert row["backfilled_pct"] == 0.0 and row["recordings_failed"] == 1


async def test_a_connecting_page_gets_the_release_point_once_after_its_room(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    """The first evaluation of a new sitting stores a release point while the state sync runs: the
    page gets it once, in the sync's documented place (after `room.assign`), not also live before it."""
    hub = hub_factory(ARCHIVE_DIR=str(tmp_path), **FAST)
    create_event(hub, "bf-once", room_size=5, expected_candidates=1)
    client, _ = await login(hub.ws, token(SECRET, "c1", "candidate", "bf-once"), timeout=30)
    await client.expect("backfill.release", timeout=30)
    await client.expect("room.assign", timeout=30)
    ping = await client.send("ping")
    await client.expect("pong", lambda m: m.get("re") == ping, timeout=30)
    types = [m["type"] for m in client.inbox if m["type"] in ("room.assign", "backfill.release")]
    assert types == ["room.assign", "backfill.release"]


S3Hub = Callable[..., tuple[HubProcess, str, Any]]
"""Start a hub (with these settings) archiving into a new bucket: the hub, the bucket, an S3 client."""


@pytest.fixture
def s3_hub(
    hub_factory: HubFactory,
    tmp_path: Path,
    s3_server: S3Server,  # noqa: F811
    aws_env: None,  # noqa: F811
) -> Iterator[S3Hub]:
    clients: list[Any] = []

    def start(**env: str) -> tuple[HubProcess, str, Any]:
        bucket = s3_server.bucket()
        s3 = {"S3_BUCKET": bucket, "S3_ENDPOINT_URL": s3_server.endpoint_url}
        clients.append(s3_server.client())
        return hub_factory(ARCHIVE_DIR=str(tmp_path), **s3, **FAST, **env), bucket, clients[-1]

    yield start
    for client in clients:
        client.close()


async def test_a_failed_recording_is_backfilled_into_s3(s3_hub: S3Hub) -> None:
    hub, bucket, client = s3_hub()
    answers, _ = await _backfill_a_failed_recording(hub, "bf-s3")
    for answer in answers:
        head = client.head_object(Bucket=bucket, Key=answer["key"])
        assert head["ContentType"].startswith("video/webm") and answer["key"].endswith("_backfill.webm")


async def _only_what_the_manifest_lists_stays(
    hub: HubProcess, event: str, stored: Callable[[], set[str]], manifest: Callable[[], dict[str, Any]]
) -> None:
    """One segment archived, one completed before its PUT landed (refused, then the PUT lands), one
    uploaded and never completed: once their upload URLs ran out, the archive holds the first only."""
    async with _asked(hub, event) as (http, _candidate, request, page):
        at = request["from"]  # three segments of different lengths (so of different bytes)
        first, early, idle = (
            recorded(at + a, at + b, segment_s=1)[0] for a, b in ((0, 400), (400, 900), (900, 1500))
        )
        kept = await page.send(request["request_id"], first)
        announced = (await page.announce(request["request_id"], early)).json()
        refused = await page.complete(announced["segment_id"])
        assert refused.json()["error"]["code"] == "segment_rejected"
        late_put = await page.put(announced["upload"], early.data)  # S3 takes it; the hub's URL refuses it
        (refused_key,) = [s["key"] for s in await _segments(http, event, "rejected")]
        assert (late_put.status_code == 200) == (refused_key in stored())
        waiting = (await page.announce(request["request_id"], idle)).json()
        assert (await page.put(waiting["upload"], idle.data)).status_code == 200
        assert stored() >= {kept["key"]} | {h["key"] for h in await _segments(http, event, "upload")}

        def listed() -> set[str]:
            return {s["key"] for s in manifest().get("segments", []) if s["kind"] == "backfill"}

        await eventually(
            lambda: listed() == {kept["key"]} == stored(), timeout=30, what="only the manifest's segments"
        )
        too_late = await page.complete(waiting["segment_id"])
        timeline = (await http.get(f"/api/v1/events/{event}/candidates/c1/timeline", headers=AUTH)).json()
    assert too_late.status_code == 422, (too_late.status_code, too_late.text, timeline["backfill"])
    assert too_late.json()["error"]["code"] == "segment_rejected"
    assert "announce it again" in too_late.json()["error"]["message"]
    states = {s["segment_id"]: s["state"] for s in timeline["backfill"]["segments"]}
    assert states == {
        kept["segment_id"]: "archived",
        announced["segment_id"]: "rejected",
        waiting["segment_id"]: "rejected",  # completed after its sweep: refused, nothing left to delete
    }
    assert listed() == {kept["key"]} == stored()


async def _segments(http: httpx.AsyncClient, event: str, state: str) -> list[dict[str, Any]]:
    timeline = (await http.get(f"/api/v1/events/{event}/candidates/c1/timeline", headers=AUTH)).json()
    return [s for s in timeline["backfill"]["segments"] if s["state"] == state]


def _backfill_keys(keys: Iterable[str]) -> set[str]:
    """The backfill segments among `keys` (`..._backfill.webm`, or `..._backfill_{tag}.webm`)."""
    return {k for k in keys if re.search(r"_backfill(_[0-9a-f]+)?\.webm$", k)}


def _local_backfill(root: Path) -> set[str]:
    return _backfill_keys(p.relative_to(root).as_posix() for p in root.rglob("*"))


async def test_uploads_the_hub_did_not_take_leave_the_local_archive(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    hub = hub_factory(ARCHIVE_DIR=str(tmp_path), BACKFILL_UPLOAD_TTL_S="2", **FAST)
    event = "bf-stray-local"
    await _only_what_the_manifest_lists_stays(
        hub, event, lambda: _local_backfill(tmp_path), lambda: _manifest(tmp_path, event, "c1")
    )


async def test_uploads_the_hub_did_not_take_leave_the_bucket(s3_hub: S3Hub) -> None:
    event = "bf-stray-s3"
    hub, bucket, client = s3_hub(BACKFILL_UPLOAD_TTL_S="2")

    def stored() -> set[str]:
        found = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        return _backfill_keys(o["Key"] for o in found)

    def manifest() -> dict[str, Any]:
        found = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        keys = [o["Key"] for o in found if o["Key"].endswith(f"{event}/c1/manifest.json")]
        return orjson.loads(client.get_object(Bucket=bucket, Key=keys[0])["Body"].read()) if keys else {}

    await _only_what_the_manifest_lists_stays(hub, event, stored, manifest)


async def test_a_failed_recording_is_backfilled_with_the_redis_store(
    hub_factory: HubFactory, tmp_path: Path, redis_server: Any
) -> None:
    hub = hub_factory(ARCHIVE_DIR=str(tmp_path), REDIS_URL=redis_server.url, HMS_SIMULATOR="embedded", **FAST)
    await _backfill_a_failed_recording(hub, "bf-redis")
