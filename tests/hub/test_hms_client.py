"""The 100ms REST client: pure parsing and retry policy, then against the simulator (ASGI and a real port)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from server.hms.client import (
    HmsClient,
    backoff_delay,
    call_label,
    may_retry_error,
    may_retry_status,
    parse_retry_after,
)
from server.hms.errors import (
    HmsAuthError,
    HmsBadRequest,
    HmsError,
    HmsNotFound,
    HmsRateLimited,
    HmsUnavailable,
    error_for_status,
)
from server.hms.models import (
    BadAnswer,
    Page,
    next_start,
    parse_active_room_untrusted,
    parse_page_untrusted,
    parse_peer_untrusted,
    parse_peers_untrusted,
    parse_presigned_url_untrusted,
    parse_recording_asset_untrusted,
    parse_recording_untrusted,
    parse_room_untrusted,
    parse_session_untrusted,
    recording_info_for_s3,
)
from server.hms.simulator import Simulator, SimulatorConfig
from server.hms.tokens import ManagementTokens, decode_unverified, mint_app_token
from tests.polling import eventually
from tests.servers import free_port
from tests.simulator_support import serve

# -- models: tolerant parsing ------------------------------------------------------------------

ROOM = {
    "id": "631b2654f771854d9bf633df",
    "name": "evt42-3f1c",
    "enabled": True,
    "description": "Room for event 42",
    "customer_id": "627cdddff2e4e30487862ad1",
    "app_id": "62510797903d857ab8ec3ba5",
    "recording_info": {"enabled": False},
    "template_id": "63188115d11d6db790c73c60",
    "template": "proctoring-template",
    "region": "in",
    "created_at": "2022-09-09T11:41:08.082Z",
    "updated_at": "0001-01-01T00:00:00Z",
    "size": "50",
    "brand_new_field": {"x": 1},
}


def test_room_keeps_known_fields_and_raw_and_ignores_unknown() -> None:
    room = parse_room_untrusted(ROOM)
    assert room.id == "631b2654f771854d9bf633df" and room.name == "evt42-3f1c" and room.enabled
    assert room.template_id == "63188115d11d6db790c73c60" and room.region == "in"
    assert room.recording_info == {"enabled": False} and room.size == 50
    assert room.created_at == "2022-09-09T11:41:08.082Z" and room.updated_at == "0001-01-01T00:00:00Z"
    assert room.max_duration_seconds is None and room.webhook is None
    assert room.raw is ROOM and room.raw["brand_new_field"] == {"x": 1}


def test_room_forgives_missing_and_odd_values() -> None:
    room = parse_room_untrusted({"id": "r1", "name": None, "enabled": "false", "size": "many"})
    assert (room.name, room.enabled, room.size, room.description) == ("", False, None, "")


@pytest.mark.parametrize("raw", [None, [], "room", {"name": "no id"}, {"id": ""}, {"id": 7}], ids=repr)
def test_room_without_usable_shape_is_a_bad_answer(raw: object) -> None:
    with pytest.raises(BadAnswer):
        parse_room_untrusted(raw)


@pytest.mark.parametrize(
    ("size", "duration", "expected"),
    [
        (26361961, 55, (26361961, 55)),
        ("26361961", "55", (26361961, 55)),
        ("1.5e3", 55.9, (1500, 55)),
        (None, "", (None, None)),
        (True, [], (None, None)),
    ],
)
def test_asset_size_and_duration_as_int_or_string(size: object, duration: object, expected: tuple) -> None:
    raw = {"id": "a1", "type": "stream", "status": "completed", "size": size, "duration": duration}
    asset = parse_recording_asset_untrusted(raw)
    assert (asset.size, asset.duration) == expected
    assert asset.metadata == {} and asset.raw is raw


def test_asset_fields() -> None:
    asset = parse_recording_asset_untrusted(
        {
            "id": "a1",
            "job_id": "j1",
            "room_id": "r1",
            "session_id": "s1",
            "type": "stream",
            "status": "completed",
            "path": "s3://b/p/x.mp4",
            "created_at": "2023-03-30T06:54:06.45Z",
            "metadata": {"peer_id": "p1", "user_id": "u1", "stream_type": "regular"},
            "thumbnails": None,
        }
    )
    assert (asset.job_id, asset.room_id, asset.session_id, asset.path) == ("j1", "r1", "s1", "s3://b/p/x.mp4")
    assert asset.metadata["user_id"] == "u1"


def test_peers_are_a_map_keyed_by_peer_id() -> None:
    peer = {
        "id": "dcd8",
        "name": "Asha",
        "user_id": "cand-3461",
        "metadata": "",
        "role": "candidate",
        "joined_at": "2023-01-25T12:06:34.080990401Z",
    }
    peers = parse_peers_untrusted({"peers": {"dcd8": peer}})
    assert list(peers) == ["dcd8"] and peers["dcd8"].user_id == "cand-3461" and peers["dcd8"].tracks == {}
    assert parse_peers_untrusted({"peers": {}}) == {} == parse_peers_untrusted({"peers": None})
    with pytest.raises(BadAnswer):
        parse_peers_untrusted({"peers": ["dcd8"]})


def test_peer_with_tracks() -> None:
    peer = parse_peer_untrusted(
        {
            "id": "p1",
            "role": "candidate",
            "tracks": {
                "t1": {"id": "t1", "stream_id": "s1", "mute": False, "type": "video", "source": "screen"}
            },
        }
    )
    assert peer.tracks["t1"].source == "screen" and peer.tracks["t1"].type == "video"


def test_active_room_and_session() -> None:
    active = parse_active_room_untrusted(
        {"id": "r1", "name": "n", "session": {"id": "s1", "created_at": "t", "peers": ["p1", "p2"]}}
    )
    assert (active.session_id, active.peer_ids) == ("s1", ("p1", "p2"))
    session = parse_session_untrusted(
        {
            "id": "s1",
            "room_id": "r1",
            "active": True,
            "peers": {
                "p1": {"id": "p1", "user_id": "u1", "joined_at": "t0", "left_at": ""},
                "p2": {"id": "p2", "user_id": "u2", "joined_at": "t0", "left_at": "t1"},
            },
        }
    )
    assert session.active and session.peers["p1"].left_at is None and session.peers["p2"].left_at == "t1"


def test_recording_job_with_assets() -> None:
    job = parse_recording_untrusted(
        {
            "id": "j1",
            "room_id": "r1",
            "status": "starting",
            "started_at": None,
            "asset_types": ["room-composite", "chat"],
            "recording_assets": [{"id": "a1", "type": "room-composite", "size": 10, "duration": 5}],
        }
    )
    assert job.started_at is None and job.asset_types == ("room-composite", "chat")
    assert job.assets[0].id == "a1"


def test_presigned_url() -> None:
    assert (
        parse_presigned_url_untrusted({"id": "a1", "url": "https://x/y?sig", "expiry": 3600})
        == "https://x/y?sig"
    )
    with pytest.raises(BadAnswer):
        parse_presigned_url_untrusted({"id": "a1"})


def test_pages_and_where_the_next_starts() -> None:
    page = parse_page_untrusted({"limit": 10, "data": [{"id": str(i)} for i in range(10)], "last": "9"})
    assert next_start(page, None, 10) == "9"
    assert next_start(page, "9", 10) is None  # `last` did not move: stop rather than loop
    assert next_start(Page(page.data[:3], "2", 10), None, 10) is None  # short page
    assert next_start(Page((), None, 10), None, 10) is None
    assert next_start(Page(page.data, None, 10), None, 10) is None
    assert parse_page_untrusted({"limit": 10, "data": None}).data == ()
    with pytest.raises(BadAnswer):
        parse_page_untrusted({"data": {"id": "x"}})


def test_recording_info_for_s3() -> None:
    assert recording_info_for_s3("bucket", "evt42", "ap-south-1", "AKIA", "sekrit") == {
        "enabled": True,
        "upload_info": {
            "type": "s3",
            "location": "bucket",
            "prefix": "evt42",
            "options": {"region": "ap-south-1"},
            "credentials": {"key": "AKIA", "secret": "sekrit"},
        },
    }
    assert "credentials" not in recording_info_for_s3("b", "p", "us-east-1")["upload_info"]
    with pytest.raises(ValueError, match="both key and secret"):
        recording_info_for_s3("b", "p", "us-east-1", key="AKIA")


# -- errors and retry policy: pure -------------------------------------------------------------


def test_error_says_which_call_failed_and_why() -> None:
    err = HmsBadRequest(
        call_label("create_room", name="evt1-r1"),
        400,
        "Invalid body param: template. Use template_id",
        ["template"],
    )
    assert str(err) == (
        "create_room(name='evt1-r1'): 400 Invalid body param: template. Use template_id (details: template)"
    )
    gone = HmsUnavailable("get_room(room_id='r1')", None, "timeout (ReadTimeout)", attempts=5)
    assert str(gone) == "get_room(room_id='r1'): timeout (ReadTimeout) [after 5 attempts]" and gone.temporary
    assert call_label("list_sessions", room_id=None, active=False) == "list_sessions(active=False)"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, HmsBadRequest),
        (401, HmsAuthError),
        (403, HmsAuthError),
        (404, HmsNotFound),
        (409, HmsBadRequest),
        (418, HmsError),
        (429, HmsRateLimited),
        (500, HmsUnavailable),
        (503, HmsUnavailable),
    ],
)
def test_error_for_status(status: int, kind: type[HmsError]) -> None:
    assert error_for_status(status) is kind


def test_backoff_is_full_jitter_bounded_by_the_cap() -> None:
    rng = random.Random(7)
    for attempt in range(1, 40):
        ceiling = min(5.0, 0.2 * 2 ** (attempt - 1))
        delays = [backoff_delay(attempt, 0.2, 5.0, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8 and min(delays) < ceiling * 0.2  # spread over the whole range


def test_retry_after_seconds_or_http_date() -> None:
    assert parse_retry_after("3", now=0) == 3.0
    assert parse_retry_after(" 0.5 ", now=0) == 0.5
    assert parse_retry_after("-4", now=0) == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    for bad in (None, "", "soon", "nan", "Wed, 21 Oct 2015 07:28:10"):
        assert parse_retry_after(bad, now=0) is None


def test_what_is_retried() -> None:
    assert may_retry_status(429, idempotent=False) and may_retry_status(429, idempotent=True)
    assert may_retry_status(503, idempotent=True) and not may_retry_status(503, idempotent=False)
    assert not may_retry_status(400, idempotent=True) and not may_retry_status(404, idempotent=True)
    request = httpx.Request("POST", "http://x")
    connect = httpx.ConnectError("refused", request=request)
    read_timeout = httpx.ReadTimeout("slow", request=request)
    assert may_retry_error(connect, idempotent=False) and may_retry_error(connect, idempotent=True)
    assert may_retry_error(httpx.ConnectTimeout("t", request=request), idempotent=False)
    assert may_retry_error(read_timeout, idempotent=True) and not may_retry_error(
        read_timeout, idempotent=False
    )
    assert not may_retry_error(httpx.RemoteProtocolError("eof", request=request), idempotent=False)


# -- against the simulator ---------------------------------------------------------------------

KEY = "sim-access-key"
SIM_SECRET = "sim-secret-" + "s" * 32
BASE = "http://hms.test/v2"


class Spy(httpx.AsyncBaseTransport):
    """Passes every request to the simulator and remembers it; can add a Retry-After to its 429s
    (the simulator's `rest.429` sends none)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, *, retry_after: str | None = None) -> None:
        self.inner = inner
        self.retry_after = retry_after
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = await self.inner.handle_async_request(request)
        if response.status_code == 429 and self.retry_after is not None:
            response.headers["Retry-After"] = self.retry_after
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()

    def calls(self, method: str, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and r.url.path == path]


class Sleeps:
    """The client's `sleep`: remembers each delay and yields without waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(
        SimulatorConfig(access_key=KEY, secret=SIM_SECRET, recording_delay_s=0)
    ) as simulator:
        yield simulator


@dataclass
class Made:
    client: HmsClient
    spy: Spy
    tokens: ManagementTokens
    sleeps: Sleeps


MakeClient = Callable[..., Made]


@pytest.fixture
async def make_client(sim: Simulator) -> AsyncIterator[MakeClient]:
    """An HmsClient on the in-process simulator (or `base_url`), fast backoff and recorded sleeps."""
    made: list[Made] = []

    def make(
        *,
        tokens: ManagementTokens | None = None,
        retry_after: str | None = None,
        base_url: str = BASE,
        transport: httpx.AsyncBaseTransport | None = None,
        **options: Any,
    ) -> Made:
        spy = Spy(transport or httpx.ASGITransport(app=sim.asgi_app), retry_after=retry_after)
        tokens = tokens or ManagementTokens(KEY, SIM_SECRET)
        sleeps = Sleeps()
        options = {"backoff_base_s": 0.01, "backoff_max_s": 0.05, "rng": random.Random(1), **options}
        client = HmsClient(base_url, tokens, transport=spy, sleep=options.pop("sleep", sleeps), **options)
        made.append(Made(client, spy, tokens, sleeps))
        return made[-1]

    yield make
    for m in made:
        await m.client.aclose()


async def join(sim: Simulator, room_id: str, user_id: str, role: str = "candidate") -> str:
    """A simulated browser joins through /media and publishes camera and mic; its peer id."""
    token = mint_app_token(
        access_key=KEY,
        secret=SIM_SECRET,
        room_id=room_id,
        user_id=user_id,
        role=role,
        ttl_s=600,
        now=time.time(),
    ).token
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sim.asgi_app), base_url="http://hms.test"
    ) as c:
        peer_id = (await c.post("/media/join", json={"token": token, "user_name": user_id})).json()["peer_id"]
        (
            await c.post(f"/media/peers/{peer_id}/publish", json={"video": True, "audio": True})
        ).raise_for_status()
    return str(peer_id)


async def leave(sim: Simulator, peer_id: str) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sim.asgi_app), base_url="http://hms.test"
    ) as c:
        (await c.post(f"/media/peers/{peer_id}/leave")).raise_for_status()


def rooms_named(sim: Simulator, name: str) -> int:
    return sum(1 for room in sim.workspace.rooms.values() if room.name.lower() == name.lower())


async def test_room_lifecycle(make_client: MakeClient) -> None:
    hms = make_client().client
    info = recording_info_for_s3("exams", "evt42", "eu-west-1", "AKIA", "sekrit")
    room = await hms.create_room(
        "evt42-r1",
        description="Room 1 of event 42",
        template_id="proctorhub-template",
        region="eu",
        recording_info=info,
        webhook={"url": "https://hub.example/hms", "headers": {"X-Secret": "s"}},
        size=30,
        max_duration_seconds=7200,
    )
    assert (room.name, room.enabled, room.region, room.size, room.max_duration_seconds) == (
        "evt42-r1",
        True,
        "eu",
        30,
        7200,
    )
    assert room.recording_info == info and room.webhook == {
        "url": "https://hub.example/hms",
        "headers": {"X-Secret": "s"},
    }
    assert await hms.get_room(room.id) == room
    assert await hms.find_room("EVT42-R1") == room
    assert await hms.find_room("evt42-nope") is None

    updated = await hms.update_room(room.id, description="moved", size=40)
    assert (updated.id, updated.description, updated.size) == (room.id, "moved", 40)
    with pytest.raises(TypeError, match="template"):
        await hms.update_room(room.id, template="x")

    assert (await hms.disable_room(room.id)).enabled is False
    assert await hms.find_room("evt42-r1") is None  # 100ms lists enabled rooms unless asked
    assert (await hms.find_room("evt42-r1", enabled=False)).id == room.id
    assert [r.id async for r in hms.list_rooms(enabled=False)] == [room.id]
    assert (await hms.enable_room(room.id)).enabled is True


async def test_create_is_an_upsert_by_name(sim: Simulator, make_client: MakeClient) -> None:
    hms = make_client().client
    first = await hms.create_room("evt7-r1", description="one")
    again = await hms.create_room("evt7-r1", description="two")
    assert again.id == first.id and again.description == "two" and rooms_named(sim, "evt7-r1") == 1
    with pytest.raises(ValueError, match="needs a name"):
        await hms.create_room("")


async def test_list_rooms_follows_pages(make_client: MakeClient) -> None:
    made = make_client()
    names = [f"page-{i:02d}" for i in range(23)]
    for name in names:
        await made.client.create_room(name)
    assert [r.name async for r in made.client.list_rooms(page_size=10)] == names
    pages = made.spy.calls("GET", "/v2/rooms")
    assert (pages[0].url.params.get("start"), pages[0].url.params["limit"]) == (None, "10")
    assert len(pages) == 3 and all(r.url.params.get("start") for r in pages[1:])
    assert [r.name async for r in made.client.list_rooms(name="PAGE-07")] == ["page-07"]
    with pytest.raises(ValueError, match="page_size"):
        made.client.list_rooms(page_size=5)


async def test_refusals_name_the_call_and_the_reason(make_client: MakeClient) -> None:
    hms = make_client().client
    with pytest.raises(HmsBadRequest) as bad:
        await hms.create_room("evt1-r1", max_duration_seconds=60)
    assert (
        str(bad.value)
        == "create_room(name='evt1-r1'): 400 Invalid body param: max_duration_seconds less than 120 seconds"
    )
    with pytest.raises(HmsBadRequest) as template:
        await hms.create_room("evt1-r1", template_id="other")
    assert str(template.value) == (
        "create_room(name='evt1-r1'): 400 Error: template not found"
        " (details: template 'other' does not exist)"
    )
    with pytest.raises(HmsNotFound, match=r"^get_room\(room_id='nope'\): 404 room not found$"):
        await hms.get_room("nope")
    with pytest.raises(HmsNotFound, match="active room not found"):
        await hms.list_active_peers((await hms.create_room("quiet")).id)


async def test_peers_sessions_and_recording_assets(sim: Simulator, make_client: MakeClient) -> None:
    hms = make_client().client
    room = await hms.create_room("evt9-r1")
    asha, ben = await join(sim, room.id, "cand-1"), await join(sim, room.id, "cand-2")
    proctor = await join(sim, room.id, "proc-1", role="proctor")

    peers = await hms.list_active_peers(room.id)
    assert (
        set(peers) == {asha, ben, proctor}
        and peers[asha].user_id == "cand-1"
        and peers[asha].role == "candidate"
    )
    assert list(await hms.list_active_peers(room.id, user_id="cand-2")) == [ben]
    assert list(await hms.list_active_peers(room.id, role="proctor")) == [proctor]
    assert await hms.list_active_peers(room.id, user_id="nobody") == {}
    peer = await hms.get_peer(room.id, asha)
    assert sorted(t.type for t in peer.tracks.values()) == ["audio", "video"]
    active = await hms.get_active_room(room.id)
    assert set(active.peer_ids) == {asha, ben, proctor}

    await hms.remove_peer(room.id, ben, "talking to someone")

    async def ben_gone() -> bool:
        return ben not in await hms.list_active_peers(room.id)

    await eventually(ben_gone)
    [session] = [s async for s in hms.list_sessions(room.id)]
    assert session.id == active.session_id and session.active and session.peers[ben].left_at is not None
    assert session.peers[asha].left_at is None

    await hms.remove_role(room.id, "proctor", "shift over")
    await eventually(lambda: _absent(hms, room.id, proctor))
    await leave(sim, asha)
    assert [s async for s in hms.list_sessions(room.id)] == []  # 100ms lists active ones by default
    [closed] = [s async for s in hms.list_sessions(room.id, active=False)]
    assert not closed.active and all(p.left_at for p in closed.peers.values())
    assert (await hms.get_session(session.id)).id == session.id

    async def assets_ready() -> bool:
        return len([a async for a in hms.list_recording_assets(room_id=room.id)]) == 3

    await eventually(assets_ready)
    assets = [a async for a in hms.list_recording_assets(session_id=session.id)]
    by_user = {a.metadata["user_id"]: a for a in assets}
    assert set(by_user) == {"cand-1", "cand-2", "proc-1"}
    asset = await hms.get_recording_asset(by_user["cand-1"].id)
    assert (asset.type, asset.status, asset.room_id) == ("stream", "completed", room.id)
    assert isinstance(asset.size, int) and asset.size > 0
    url = await hms.presigned_url(asset.id, presign_duration_s=600)
    assert url.startswith(("http://", "https://", "s3://", "file://"))


async def _absent(hms: HmsClient, room_id: str, peer_id: str) -> bool:
    try:
        return peer_id not in await hms.list_active_peers(room_id)
    except HmsNotFound:
        return True


async def test_end_room_with_lock(sim: Simulator, make_client: MakeClient) -> None:
    hms = make_client().client
    room = await hms.create_room("evt9-r2")
    await join(sim, room.id, "cand-1")
    await hms.end_room(room.id, reason="exam over", lock=True)

    async def ended() -> bool:
        try:
            await hms.get_active_room(room.id)
        except HmsNotFound:
            return True
        return False

    await eventually(ended)
    assert (await hms.get_room(room.id)).enabled is False


# -- robustness --------------------------------------------------------------------------------


async def test_injected_429_and_500_do_not_duplicate_rooms(sim: Simulator, make_client: MakeClient) -> None:
    made = make_client()
    sim.add_fault("rest.429", path_prefix="/v2/rooms", count=2)
    sim.add_fault("rest.500", path_prefix="/v2/rooms", count=2)
    room = await made.client.create_room("evt3-r1", description="retried")
    assert [i.kind for i in sim.injected] == ["rest.429", "rest.429", "rest.500", "rest.500"]
    posts = made.spy.calls("POST", "/v2/rooms")
    assert len(posts) == 5 and len({p.content for p in posts}) == 1  # the very same body each time
    assert rooms_named(sim, "evt3-r1") == 1 and (await made.client.find_room("evt3-r1")) == room
    assert len(made.sleeps.delays) == 4


async def test_retries_exhausted_raise_unavailable_naming_the_call(
    sim: Simulator, make_client: MakeClient
) -> None:
    made = make_client(max_attempts=3)
    sim.add_fault("rest.500", path_prefix="/v2/rooms")
    with pytest.raises(HmsUnavailable) as gone:
        await made.client.create_room("evt3-r2")
    assert str(gone.value) == (
        "create_room(name='evt3-r2'): 500 Internal server error (details: injected fault) [after 3 attempts]"
    )
    assert gone.value.temporary and len(sim.injected) == 3 and rooms_named(sim, "evt3-r2") == 0


async def test_actions_are_retried_only_where_they_cannot_have_acted(
    sim: Simulator, make_client: MakeClient
) -> None:
    made = make_client()
    room = await made.client.create_room("evt3-r3")
    peer = await join(sim, room.id, "cand-1")
    path = f"/v2/active-rooms/{room.id}/remove-peers"
    sim.add_fault("rest.500", path_prefix=path, count=1)
    with pytest.raises(HmsUnavailable, match=r"^remove_peer\(room_id='\w+', peer_id='[\w-]+'\): 500 "):
        await made.client.remove_peer(room.id, peer, "bye")
    assert len(made.spy.calls("POST", path)) == 1  # a 5xx may have acted: not resent

    sim.add_fault("rest.429", path_prefix=path, count=2)
    await made.client.remove_peer(room.id, peer, "bye")  # 429: refused before acting, resent
    assert len(made.spy.calls("POST", path)) == 4


async def test_a_refused_token_is_minted_again_once(sim: Simulator, make_client: MakeClient) -> None:
    wrong = ManagementTokens(KEY, "not-the-secret-" + "n" * 32)
    made = make_client(tokens=wrong)
    with pytest.raises(HmsAuthError) as refused:
        await made.client.get_room("r1")
    assert str(refused.value) == (
        "get_room(room_id='r1'): 401 Token validation error (also with a freshly minted management token)"
        " (details: invalid token signature)"
    )
    first, second = (r.headers["Authorization"] for r in made.spy.requests)
    assert made.sleeps.delays == []
    assert len(made.spy.requests) == 2 and first != second  # re-minted, not resent

    # A node whose clock was two days behind minted a token already expired for 100ms; the cached
    # token is refused, invalidated, and the one minted next (clock corrected) works.
    real = time.time()
    readings = iter([real - 2 * 86400, real, real, real])
    tokens = ManagementTokens(KEY, SIM_SECRET, ttl_s=86400, clock=lambda: next(readings))
    made = make_client(tokens=tokens)
    room = await made.client.create_room("evt5-r1")
    assert rooms_named(sim, "evt5-r1") == 1 and room.name == "evt5-r1"
    expired, fresh = (decode_unverified(r.headers["Authorization"][7:]) for r in made.spy.requests)
    assert expired["exp"] < real < fresh["exp"] and len(made.sleeps.delays) == 0


async def test_retry_after_is_honoured_and_bounded(sim: Simulator, make_client: MakeClient) -> None:
    made = make_client(retry_after="0.04", backoff_max_s=0.05)
    sim.add_fault("rest.429", path_prefix="/v2/rooms", count=2)
    await made.client.create_room("evt6-r1")
    assert made.sleeps.delays == [0.04, 0.04]

    # Longer than we would wait: give up at once, and say how long 100ms asked for.
    made = make_client(retry_after="45", backoff_max_s=0.05)
    sim.add_fault("rest.429", path_prefix="/v2/rooms", count=1)
    with pytest.raises(HmsRateLimited) as limited:
        await made.client.create_room("evt6-r2")
    assert limited.value.retry_after_s == 45 and limited.value.temporary and made.sleeps.delays == []
    assert "429 Too many requests" in str(limited.value) and "(retry after 45s)" in str(limited.value)


async def test_backoff_has_full_jitter_under_the_cap(sim: Simulator, make_client: MakeClient) -> None:
    made = make_client(backoff_base_s=0.1, backoff_max_s=0.25, rng=random.Random(3), max_attempts=6)
    sim.add_fault("rest.500", path_prefix="/v2/rooms", count=5)
    await made.client.create_room("evt8-r1")
    twin = random.Random(3)
    expected = [twin.uniform(0, min(0.25, 0.1 * 2**n)) for n in range(5)]
    assert made.sleeps.delays == pytest.approx(expected)
    assert all(d <= 0.25 for d in made.sleeps.delays)


async def test_each_retry_is_logged(
    sim: Simulator, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    made = make_client()
    sim.add_fault("rest.500", path_prefix="/v2/rooms", count=2)
    with caplog.at_level(logging.WARNING, logger="proctorhub.hms.client"):
        await made.client.get_room((await made.client.create_room("evt2-r1")).id)
    lines = [r.getMessage() for r in caplog.records if r.name == "proctorhub.hms.client"]
    assert len(lines) == 2
    assert "call=create_room(name='evt2-r1') attempt=2/5 cause=500 Internal server error" in lines[0]
    assert "attempt=3/5" in lines[1]


# -- over a real port: timeouts and refused connections ----------------------------------------


@pytest.fixture
async def sim_port(sim: Simulator) -> AsyncIterator[int]:
    """The simulator's app under uvicorn on a free loopback port."""
    async with serve(sim.asgi_app, lifespan="off", ws="none") as url:
        yield int(url.rsplit(":", 1)[1])


async def test_timeouts_are_retried_without_duplicate_rooms(
    sim: Simulator, sim_port: int, make_client: MakeClient
) -> None:
    base = f"http://127.0.0.1:{sim_port}/v2"
    made = make_client(
        base_url=base, transport=httpx.AsyncHTTPTransport(), timeout_s=0.2, sleep=asyncio.sleep
    )
    sim.add_fault("rest.timeout", path_prefix="/v2/rooms", count=2, seconds=0.4)
    room = await made.client.create_room("evt4-r1")
    await asyncio.sleep(0.5)  # the answers the client gave up on have now been acted on, late
    assert rooms_named(sim, "evt4-r1") == 1 and room.id == sim.workspace.room_by_name("evt4-r1").id
    assert [i.kind for i in sim.injected] == ["rest.timeout", "rest.timeout"]

    made = make_client(base_url=base, transport=httpx.AsyncHTTPTransport(), timeout_s=0.2, max_attempts=2)
    sim.add_fault("rest.timeout", path_prefix=f"/v2/rooms/{room.id}", count=2, seconds=0.3)
    with pytest.raises(HmsUnavailable) as slow:
        await made.client.get_room(room.id)
    assert str(slow.value).startswith(f"get_room(room_id='{room.id}'): timeout (ReadTimeout")
    assert str(slow.value).endswith("[after 2 attempts]")

    path = f"/v2/active-rooms/{room.id}/end-room"
    sim.add_fault("rest.timeout", path_prefix=path, count=1, seconds=0.3)
    with pytest.raises(HmsUnavailable, match="timeout"):
        await made.client.end_room(room.id)  # may have ended it: not resent
    assert len(made.spy.calls("POST", path)) == 1
    await asyncio.sleep(0.35)


async def test_refused_connections_are_retried_for_every_call(make_client: MakeClient) -> None:
    made = make_client(base_url=f"http://127.0.0.1:{free_port()}/v2", transport=httpx.AsyncHTTPTransport())
    with pytest.raises(HmsUnavailable) as refused:
        await made.client.remove_peer("r1", "p1", "bye")  # nothing was sent: safe even for an action
    assert str(refused.value).startswith(
        "remove_peer(room_id='r1', peer_id='p1'): connection error (ConnectError"
    )
    assert refused.value.attempts == 5 and len(made.sleeps.delays) == 4


# -- composite recordings: not in the simulator yet; the documented answers (§2.5) -------------


async def test_composite_recording_calls() -> None:
    job = {
        "id": "642531cf94091a5af841456d",
        "room_id": "r1",
        "session_id": "s1",
        "status": "starting",
        "meeting_url": "https://x/meet",
        "started_by": "",
        "stopped_by": "",
        "created_at": "2023-03-30T06:53:03.67Z",
        "started_at": None,
        "stopped_at": None,
        "updated_at": "2023-03-30T06:53:03.67Z",
        "asset_types": [],
    }
    seen: list[tuple[str, str, bytes]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.content))
        if request.url.path.endswith("/stop"):
            return httpx.Response(
                200, json={"limit": 10, "data": [{**job, "status": "stopping"}], "last": job["id"]}
            )
        return httpx.Response(200, json=job)

    async with HmsClient(
        BASE, ManagementTokens(KEY, SIM_SECRET), transport=httpx.MockTransport(answer)
    ) as hms:
        started = await hms.start_recording(
            "r1", meeting_url="https://x/meet", resolution={"width": 1280, "height": 720}
        )
        stopped = await hms.stop_recording("r1")
        fetched = await hms.get_recording(job["id"])
    assert started.status == "starting" and started.started_at is None
    assert [j.status for j in stopped] == ["stopping"] and fetched.id == job["id"]
    assert seen[0][:2] == ("POST", "/v2/recordings/room/r1/start")
    assert json.loads(seen[0][2]) == {
        "meeting_url": "https://x/meet",
        "resolution": {"width": 1280, "height": 720},
    }
    assert seen[1][:2] == ("POST", "/v2/recordings/room/r1/stop")
    assert seen[2][:2] == ("GET", f"/v2/recordings/{job['id']}")
