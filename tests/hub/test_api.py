"""The HTTP API against a real hub process (docs/protocol.md, "HTTP API"); the error handlers in-process."""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Route
from websockets.sync.client import connect

from server.api.errors import ApiError, exception_handlers
from server.auth import Role, mint_session, verify_session
from tests.servers import HubProcess, start_hub

SECRET = "test-secret-0123456789-abcdefghijklmnop"
API_KEY = "test-api-key-0123456789-abcdefghijklmn"
EVENTS = "/api/v1/events"

_ids = itertools.count()


@pytest.fixture(scope="module")
def hub() -> Iterator[HubProcess]:
    process = start_hub({"HUB_SECRET": SECRET, "HUB_API_KEY": API_KEY})
    yield process
    process.stop()


@pytest.fixture(scope="module")
def http(hub: HubProcess) -> Iterator[httpx.Client]:
    """A client with no credential: each call says who it is with `as_(...)`."""
    with httpx.Client(base_url=hub.http, timeout=10) as client:
        yield client


def as_(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


HOST = as_(API_KEY)


def session(
    role: Role, event_id: str, *, user_id: str = "u1", secret: str = SECRET, ttl_s: float = 600
) -> str:
    return mint_session(secret, user_id=user_id, event_id=event_id, role=role, now=time.time(), ttl_s=ttl_s)


@pytest.fixture
def new_event(http: httpx.Client) -> Callable[..., str]:
    """Create an event with a fresh id (fields may be overridden) and return its id."""

    def create(**fields: Any) -> str:
        event_id = f"ev-{time.monotonic_ns()}-{next(_ids)}"
        response = http.post(EVENTS, json={"event_id": event_id, "name": "Exam", **fields}, headers=HOST)
        assert response.status_code == 201, response.text
        return event_id

    return create


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    """The documented error shape, and nothing of the server's insides; returns the message."""
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return str(body["error"]["message"])


ZERO_COUNTS = {"online": 0, "reconnecting": 0, "offline": 0, "finished": 0, "proctors": 0}


# happy paths


def test_create_get_list_patch(http: httpx.Client) -> None:
    event_id = f"full-{time.monotonic_ns()}"
    config = {
        "event_id": event_id,
        "name": "Final exam",
        "room_size": 12,
        "proctors_per_room": 2,
        "proctor_load": 24,
        "expected_candidates": 300,
        "token_ttl_s": 7200,
        "recording": False,
        "starts_at": "2030-01-01T09:00:00Z",
        "ends_at": "2030-01-01T12:00:00+00:00",
        "events_url": None,
        "lti": None,
    }
    created = http.post(EVENTS, json=config, headers=HOST)
    assert created.status_code == 201, created.text
    assert created.json() == {**config, "counts": ZERO_COUNTS}

    got = http.get(f"{EVENTS}/{event_id}", headers=HOST)
    assert got.status_code == 200
    assert got.json() == created.json()

    listed = http.get(EVENTS, headers=HOST)
    assert listed.status_code == 200
    assert created.json() in listed.json()["events"]

    patched = http.patch(f"{EVENTS}/{event_id}", json={"name": "Final exam B", "room_size": 8}, headers=HOST)
    assert patched.status_code == 200, patched.text
    assert patched.json() == {**config, "name": "Final exam B", "room_size": 8, "counts": ZERO_COUNTS}
    assert http.get(f"{EVENTS}/{event_id}", headers=HOST).json() == patched.json()


def test_create_fills_defaults(http: httpx.Client, new_event: Callable[..., str]) -> None:
    event_id = new_event()
    assert http.get(f"{EVENTS}/{event_id}", headers=HOST).json() == {
        "event_id": event_id,
        "name": "Exam",
        "room_size": 10,
        "proctors_per_room": 1,
        "proctor_load": 10,
        "expected_candidates": 0,
        "token_ttl_s": 3600,
        "recording": True,
        "starts_at": None,
        "ends_at": None,
        "events_url": None,
        "lti": None,
        "counts": ZERO_COUNTS,
    }


def test_patch_may_repeat_the_id_and_clear_times(http: httpx.Client, new_event: Callable[..., str]) -> None:
    event_id = new_event(starts_at="2030-01-01T09:00:00Z")
    body = {"event_id": event_id, "starts_at": None}
    patched = http.patch(f"{EVENTS}/{event_id}", json=body, headers=HOST)
    assert patched.status_code == 200, patched.text
    assert patched.json()["starts_at"] is None


# validation: every refusal names its field

BAD_CREATES: list[tuple[Any, str]] = [
    ([], "body"),
    ("event", "body"),
    (None, "body"),
    ({"name": "x"}, "event_id"),
    ({"event_id": "a"}, "name"),
    ({"event_id": "", "name": "x"}, "event_id"),
    ({"event_id": "a" * 129, "name": "x"}, "event_id"),
    ({"event_id": "a b", "name": "x"}, "event_id"),
    ({"event_id": "a/b", "name": "x"}, "event_id"),
    ({"event_id": "*", "name": "x"}, "event_id"),
    ({"event_id": 12, "name": "x"}, "event_id"),
    ({"event_id": "a", "name": ""}, "name"),
    ({"event_id": "a", "name": "   "}, "name"),
    ({"event_id": "a", "name": "x" * 201}, "name"),
    ({"event_id": "a", "name": 5}, "name"),
    ({"event_id": "a", "name": "x", "colour": "red"}, "colour"),
    ({"event_id": "a", "name": "x", "room_size": 0}, "room_size"),
    ({"event_id": "a", "name": "x", "room_size": 101}, "room_size"),
    ({"event_id": "a", "name": "x", "room_size": True}, "room_size"),
    ({"event_id": "a", "name": "x", "room_size": 10.0}, "room_size"),
    ({"event_id": "a", "name": "x", "room_size": "10"}, "room_size"),
    ({"event_id": "a", "name": "x", "room_size": None}, "room_size"),
    ({"event_id": "a", "name": "x", "proctors_per_room": 0}, "proctors_per_room"),
    ({"event_id": "a", "name": "x", "proctors_per_room": 11}, "proctors_per_room"),
    ({"event_id": "a", "name": "x", "proctor_load": 0}, "proctor_load"),
    ({"event_id": "a", "name": "x", "proctor_load": 1001}, "proctor_load"),
    ({"event_id": "a", "name": "x", "proctor_load": False}, "proctor_load"),
    ({"event_id": "a", "name": "x", "expected_candidates": -1}, "expected_candidates"),
    ({"event_id": "a", "name": "x", "expected_candidates": 100_001}, "expected_candidates"),
    ({"event_id": "a", "name": "x", "token_ttl_s": 9}, "token_ttl_s"),
    ({"event_id": "a", "name": "x", "token_ttl_s": 86_401}, "token_ttl_s"),
    ({"event_id": "a", "name": "x", "recording": 1}, "recording"),
    ({"event_id": "a", "name": "x", "recording": "yes"}, "recording"),
    ({"event_id": "a", "name": "x", "starts_at": "tomorrow"}, "starts_at"),
    ({"event_id": "a", "name": "x", "starts_at": "2030-01-01T09:00:00"}, "starts_at"),
    ({"event_id": "a", "name": "x", "starts_at": "2030-01-01"}, "starts_at"),
    ({"event_id": "a", "name": "x", "starts_at": 1893488400}, "starts_at"),
    ({"event_id": "a", "name": "x", "ends_at": "2030-13-01T09:00:00Z"}, "ends_at"),
    (
        {
            "event_id": "a",
            "name": "x",
            "starts_at": "2030-01-01T10:00:00Z",
            "ends_at": "2030-01-01T09:00:00Z",
        },
        "ends_at",
    ),
    (
        {
            "event_id": "a",
            "name": "x",
            "starts_at": "2030-01-01T10:00:00Z",
            "ends_at": "2030-01-01T11:00:00+02:00",
        },
        "ends_at",
    ),
]


@pytest.mark.parametrize(("body", "field"), BAD_CREATES)
def test_create_refuses_bad_field(http: httpx.Client, body: Any, field: str) -> None:
    response = http.post(EVENTS, content=json.dumps(body), headers=HOST)
    message = assert_error(response, 400, "invalid")
    assert message.startswith(f"{field}: "), message


BAD_PATCHES: list[tuple[Any, str]] = [
    ([1], "body"),
    ({"event_id": "other"}, "event_id"),
    ({"name": ""}, "name"),
    ({"room_size": 0}, "room_size"),
    ({"room_size": False}, "room_size"),
    ({"token_ttl_s": 5}, "token_ttl_s"),
    ({"recording": None}, "recording"),
    ({"nope": 1}, "nope"),
    ({"ends_at": "2029-01-01T00:00:00Z"}, "ends_at"),  # before the stored starts_at
    ({"starts_at": "2031-01-01T00:00:00Z"}, "ends_at"),  # after the stored ends_at
]


@pytest.mark.parametrize(("body", "field"), BAD_PATCHES)
def test_patch_refuses_bad_field(
    http: httpx.Client, new_event: Callable[..., str], body: Any, field: str
) -> None:
    event_id = new_event(starts_at="2030-01-01T09:00:00Z", ends_at="2030-01-01T12:00:00Z")
    before = http.get(f"{EVENTS}/{event_id}", headers=HOST).json()
    response = http.patch(f"{EVENTS}/{event_id}", content=json.dumps(body), headers=HOST)
    message = assert_error(response, 400, "invalid")
    assert message.startswith(f"{field}: "), message
    assert http.get(f"{EVENTS}/{event_id}", headers=HOST).json() == before


@pytest.mark.parametrize("raw", [b"{", b"", b"\xff\xfe", b"[" * 50_000])
def test_body_that_is_not_json(http: httpx.Client, raw: bytes) -> None:
    assert_error(http.post(EVENTS, content=raw, headers=HOST), 400, "invalid_json")


def test_body_too_large(http: httpx.Client) -> None:
    body = {"event_id": "big", "name": "x" * 100_000}
    assert_error(http.post(EVENTS, json=body, headers=HOST), 413, "too_large")


def test_duplicate_is_a_conflict(http: httpx.Client, new_event: Callable[..., str]) -> None:
    event_id = new_event()
    response = http.post(EVENTS, json={"event_id": event_id, "name": "Again"}, headers=HOST)
    assert_error(response, 409, "exists")
    assert http.get(f"{EVENTS}/{event_id}", headers=HOST).json()["name"] == "Exam"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"{EVENTS}/missing", None),
        ("PATCH", f"{EVENTS}/missing", {"name": "x"}),
        ("POST", f"{EVENTS}/missing/sessions", {"user_id": "u", "role": "candidate"}),
    ],
)
def test_unknown_event_is_not_found(http: httpx.Client, method: str, path: str, body: Any) -> None:
    assert_error(http.request(method, path, json=body, headers=HOST), 404, "not_found")


def test_unknown_route_and_method(http: httpx.Client) -> None:
    assert_error(http.get("/api/v1/nothing-here", headers=HOST), 404, "not_found")
    response = http.delete(EVENTS, headers=HOST)
    assert_error(response, 405, "method_not_allowed")
    assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


# authentication


def test_missing_or_malformed_header_is_unauthenticated(http: httpx.Client) -> None:
    for headers in (
        {},
        {"Authorization": ""},
        {"Authorization": f"Basic {API_KEY}"},
        {"Authorization": "Bearer"},
    ):
        response = http.get(EVENTS, headers=headers)
        assert_error(response, 401, "unauthenticated")
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("credential", "reason"),
    [
        (API_KEY + "x", "not a JWT"),
        ("é" * 40, "ASCII"),  # sent as UTF-8 bytes: compare_digest must not choke on non-ASCII
        (session("admin", "*", secret="another-secret-0123456789-abcdefghij"), "signature"),
        (session("admin", "*", ttl_s=-10), "expired"),
    ],
    ids=["wrong-key", "non-ascii", "other-secret", "expired"],
)
def test_bad_credential_is_refused_with_reason(http: httpx.Client, credential: str, reason: str) -> None:
    headers = {"Authorization": f"Bearer {credential}".encode()}
    message = assert_error(http.get(EVENTS, headers=headers), 401, "invalid_credentials")
    assert reason in message


# permissions


@pytest.mark.parametrize("role", ["candidate", "proctor"])
def test_candidates_and_proctors_may_not_touch_events(
    http: httpx.Client, new_event: Callable[..., str], role: Role
) -> None:
    event_id = new_event()
    who = as_(session(role, event_id))
    calls = [
        http.get(EVENTS, headers=who),
        http.post(EVENTS, json={"event_id": f"{event_id}-2", "name": "x"}, headers=who),
        http.get(f"{EVENTS}/{event_id}", headers=who),
        http.patch(f"{EVENTS}/{event_id}", json={"name": "x"}, headers=who),
        http.post(f"{EVENTS}/{event_id}/sessions", json={"user_id": "u", "role": "admin"}, headers=who),
    ]
    for response in calls:
        assert_error(response, 403, "forbidden")


def test_admin_of_one_event_sees_only_it(http: httpx.Client, new_event: Callable[..., str]) -> None:
    mine, other = new_event(), new_event()
    admin = as_(session("admin", mine))
    assert http.get(f"{EVENTS}/{mine}", headers=admin).status_code == 200
    assert http.patch(f"{EVENTS}/{mine}", json={"room_size": 5}, headers=admin).json()["room_size"] == 5
    assert (
        http.post(
            f"{EVENTS}/{mine}/sessions", json={"user_id": "c", "role": "candidate"}, headers=admin
        ).status_code
        == 201
    )
    assert [e["event_id"] for e in http.get(EVENTS, headers=admin).json()["events"]] == [mine]

    assert_error(http.get(f"{EVENTS}/{other}", headers=admin), 403, "forbidden")
    assert_error(http.patch(f"{EVENTS}/{other}", json={"name": "x"}, headers=admin), 403, "forbidden")
    body = {"user_id": "c", "role": "candidate"}
    assert_error(http.post(f"{EVENTS}/{other}/sessions", json=body, headers=admin), 403, "forbidden")
    # permission before existence: an admin cannot probe which events exist
    assert_error(http.get(f"{EVENTS}/missing", headers=admin), 403, "forbidden")
    # creating needs the API key or an admin of every event
    assert_error(
        http.post(EVENTS, json={"event_id": f"{mine}-new", "name": "x"}, headers=admin), 403, "forbidden"
    )


def test_admin_of_every_event(http: httpx.Client, new_event: Callable[..., str]) -> None:
    first, second = new_event(), new_event()
    admin = as_(session("admin", "*"))
    listed = {e["event_id"] for e in http.get(EVENTS, headers=admin).json()["events"]}
    assert {first, second} <= listed
    event_id = f"by-star-{time.monotonic_ns()}"
    assert http.post(EVENTS, json={"event_id": event_id, "name": "x"}, headers=admin).status_code == 201
    assert http.get(f"{EVENTS}/{event_id}", headers=admin).status_code == 200


# session minting


@pytest.mark.parametrize("role", ["candidate", "proctor", "admin"])
def test_minted_session_verifies(http: httpx.Client, new_event: Callable[..., str], role: Role) -> None:
    event_id = new_event()
    body = {"user_id": "user-7", "role": role, "name": "Ada L.", "ttl_s": 900}
    before = time.time()
    response = http.post(f"{EVENTS}/{event_id}/sessions", json=body, headers=HOST)
    assert response.status_code == 201, response.text
    minted = response.json()
    assert set(minted) == {"token", "expires_at"}
    assert isinstance(minted["expires_at"], int)
    assert before + 900 - 1 <= minted["expires_at"] <= time.time() + 900
    claims = verify_session(minted["token"], SECRET, now=time.time())
    assert (claims.user_id, claims.event_id, claims.role, claims.name) == ("user-7", event_id, role, "Ada L.")
    assert claims.exp == minted["expires_at"]


def test_minted_session_defaults(http: httpx.Client, new_event: Callable[..., str]) -> None:
    event_id = new_event()
    minted = http.post(
        f"{EVENTS}/{event_id}/sessions", json={"user_id": "u", "role": "candidate"}, headers=HOST
    )
    claims = verify_session(minted.json()["token"], SECRET, now=time.time())
    assert claims.name is None
    assert claims.exp - claims.iat == 3600


BAD_SESSIONS: list[tuple[Any, str]] = [
    ("u", "body"),
    ({"role": "candidate"}, "user_id"),
    ({"user_id": "", "role": "candidate"}, "user_id"),
    ({"user_id": "u" * 129, "role": "candidate"}, "user_id"),
    ({"user_id": 7, "role": "candidate"}, "user_id"),
    ({"user_id": "u"}, "role"),
    ({"user_id": "u", "role": "superuser"}, "role"),
    ({"user_id": "u", "role": ["admin"]}, "role"),
    ({"user_id": "u", "role": "candidate", "name": "n" * 201}, "name"),
    ({"user_id": "u", "role": "candidate", "name": 3}, "name"),
    ({"user_id": "u", "role": "candidate", "ttl_s": 59}, "ttl_s"),
    ({"user_id": "u", "role": "candidate", "ttl_s": 86_401}, "ttl_s"),
    ({"user_id": "u", "role": "candidate", "ttl_s": True}, "ttl_s"),
    ({"user_id": "u", "role": "candidate", "ttl_s": 600.5}, "ttl_s"),
    ({"user_id": "u", "role": "candidate", "event": "*"}, "event"),
]


@pytest.mark.parametrize(("body", "field"), BAD_SESSIONS)
def test_session_request_refuses_bad_field(
    http: httpx.Client, new_event: Callable[..., str], body: Any, field: str
) -> None:
    event_id = new_event()
    response = http.post(f"{EVENTS}/{event_id}/sessions", content=json.dumps(body), headers=HOST)
    message = assert_error(response, 400, "invalid")
    assert message.startswith(f"{field}: "), message


def test_minted_session_opens_a_websocket(
    http: httpx.Client, hub: HubProcess, new_event: Callable[..., str]
) -> None:
    event_id = new_event()
    body = {"user_id": "cand-1", "role": "candidate", "name": "Cand One"}
    token = http.post(f"{EVENTS}/{event_id}/sessions", json=body, headers=HOST).json()["token"]
    with connect(hub.ws, open_timeout=5, close_timeout=2) as ws:
        ws.send(json.dumps({"type": "auth", "data": {"token": token}}))
        hello = json.loads(ws.recv(timeout=5))
        assert hello["type"] == "hello", hello
        assert hello["data"]["user_id"] == "cand-1"
        assert hello["data"]["event_id"] == event_id
        assert hello["data"]["role"] == "candidate"
        # the connected candidate shows in the event's live counts
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            counts = http.get(f"{EVENTS}/{event_id}", headers=HOST).json()["counts"]
            if counts["online"] == 1:
                break
            time.sleep(0.05)
        assert counts == {**ZERO_COUNTS, "online": 1}


# the handlers themselves, in-process: a crash is a 500 with no insides


def _crash(request: Request) -> None:
    raise RuntimeError("secret database password in this message")


def _refuse(request: Request) -> None:
    raise ApiError(418, "teapot", "short and stout")


def _http_exception(request: Request) -> None:
    raise HTTPException(409, "taken")


def handlers_client() -> httpx.AsyncClient:
    app = Starlette(
        routes=[Route("/crash", _crash), Route("/refuse", _refuse), Route("/conflict", _http_exception)],
        exception_handlers=exception_handlers,
    )
    # ServerErrorMiddleware re-raises after answering (for the server's log); the answer is what we test.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://app")


async def test_unhandled_error_is_internal_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    async with handlers_client() as client:
        with caplog.at_level(logging.ERROR, logger="proctorhub.api"):
            response = await client.get("/crash")
    assert assert_error(response, 500, "internal") == "internal error"
    assert "secret database password" not in response.text
    record = next(r for r in caplog.records if r.name == "proctorhub.api")
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


async def test_api_error_and_http_exception_shapes() -> None:
    async with handlers_client() as client:
        assert assert_error(await client.get("/refuse"), 418, "teapot") == "short and stout"
        assert assert_error(await client.get("/conflict"), 409, "conflict") == "taken"
        assert_error(await client.get("/nowhere"), 404, "not_found")
