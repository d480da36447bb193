"""The simulator checks tokens as 100ms does: app tokens at join (§1.4), management tokens on REST (§2.1)."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from tests.simulator_support import ACCESS_KEY, SECRET, running


def _tamper(token: str, **changes: object) -> str:
    """Change claims but keep the original signature."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


async def test_a_minted_app_token_joins() -> None:
    async with running() as h:
        room = await h.create_room("exam-1")
        answer = await h.http.post(
            "/media/join",
            json={"token": h.app_token(room["id"], "cand-1"), "user_name": "Asha", "user_data": '{"seat":3}'},
        )
        assert answer.status_code == 200, answer.text
        joined = answer.json()
        assert joined["room_id"] == room["id"]
        assert joined["user_id"] == "cand-1"
        assert joined["role"] == "candidate"
        assert len(joined["session_id"]) == 24
        peer = await h.peer(joined["peer_id"])
        assert (peer["name"], peer["metadata"], peer["state"]) == ("Asha", '{"seat":3}', "joined")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda h, room: "not-a-jwt", "malformed token"),
        (lambda h, room: _tamper(h.app_token(room, "cand-1"), user_id="cand-2"), "invalid token signature"),
        (
            lambda h, room: h.app_token(room, "cand-1", secret="another-secret-" + "z" * 32),
            "invalid token signature",
        ),
        (lambda h, room: h.app_token(room, "cand-1", access_key="someone-else"), "invalid access key"),
        (lambda h, room: h.app_token(room, "cand-1", now=time.time() - 7200, ttl_s=600), "token is expired"),
        (lambda h, room: h.app_token(room, "cand-1", now=time.time() + 120), "token is not valid yet"),
        (
            lambda h, room: h.auth()["Authorization"].removeprefix("Bearer "),
            "invalid token type: expected app, got management",
        ),
        (
            lambda h, room: jwt.encode(
                {
                    "access_key": ACCESS_KEY,
                    "room_id": room,
                    "user_id": "u",
                    "role": "candidate",
                    "type": "app",
                },
                None,
                algorithm="none",
            ),
            "unsupported token algorithm",
        ),
        (
            lambda h, room: jwt.encode(
                {
                    "access_key": ACCESS_KEY,
                    "room_id": room,
                    "user_id": "u",
                    "role": "candidate",
                    "type": "app",
                    "version": 1,
                    "nbf": int(time.time()),
                    "exp": int(time.time()) + 60,
                },
                SECRET,
                algorithm="HS256",
            ),
            "invalid token version: expected 2, got 1",
        ),
    ],
    ids=[
        "malformed",
        "tampered",
        "other-secret",
        "access-key",
        "expired",
        "nbf-future",
        "management",
        "alg-none",
        "version",
    ],
)
async def test_bad_app_tokens_are_refused_with_401(make, message) -> None:  # type: ignore[no-untyped-def]
    async with running() as h:
        room = await h.create_room("exam-1")
        answer = await h.http.post("/media/join", json={"token": make(h, room["id"])})
        assert answer.status_code == 401, answer.text
        assert answer.json() == {"code": 401, "message": message, "details": [message]}
        assert not h.sim.workspace.peers
        assert not [e for e in h.sim.events if e["type"].startswith(("peer.", "session."))]


async def test_skew_of_a_few_seconds_is_allowed() -> None:
    async with running() as h:
        room = await h.create_room("exam-1")
        # nbf 5 s ahead of the simulator's clock (mint back-dates by 10 s, so now+15)
        await h.join(room["id"], "cand-1", now=time.time() + 15)


async def test_the_injected_clock_decides_expiry() -> None:
    fake_now = [time.time()]
    async with running(clock=lambda: fake_now[0]) as h:
        room = await h.create_room("exam-1")
        token = h.app_token(room["id"], "cand-1", ttl_s=3600)
        fake_now[0] += 2 * 3600
        answer = await h.http.post("/media/join", json={"token": token})
        assert answer.status_code == 401
        assert answer.json()["message"] == "token is expired"


async def test_unknown_room_is_404_and_disabled_room_is_403() -> None:
    async with running() as h:
        answer = await h.http.post("/media/join", json={"token": h.app_token("0" * 24, "cand-1")})
        assert answer.status_code == 404
        assert answer.json()["message"] == "room not found"

        room = await h.create_room("exam-1")
        await h.http.post(f"/v2/rooms/{room['id']}", json={"enabled": False}, headers=h.auth())
        answer = await h.http.post("/media/join", json={"token": h.app_token(room["id"], "cand-1")})
        assert answer.status_code == 403
        assert answer.json() == {
            "code": 403,
            "message": "room is disabled",
            "details": [f"room {room['id']!r} is disabled"],
        }


@pytest.mark.parametrize("role", ["host", "Candidate"])
async def test_a_role_outside_the_template_is_refused_with_a_join_failure(role: str) -> None:
    async with running() as h:
        room = await h.create_room("exam-1")
        answer = await h.http.post(
            "/media/join", json={"token": h.app_token(room["id"], "u1", role), "user_name": "U"}
        )
        assert answer.status_code == 403
        assert answer.json()["message"] == "role not allowed"
        [failure] = [e for e in h.sim.events if e["type"] == "peer.join.failure"]
        data = failure["data"]
        assert (data["error_message"], data["role"], data["user_id"], data["room_id"]) == (
            "role not allowed",
            role,
            "u1",
            room["id"],
        )
        assert data["joined_at"] == "0001-01-01T00:00:00Z"
        assert "session_id" not in data
        assert not h.sim.workspace.sessions  # no session opened for a refused join


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "token not found"),
        ({"Authorization": "Basic abc"}, "malformed token"),
        ({"Authorization": "Bearer garbage"}, "malformed token"),
    ],
)
async def test_rest_without_a_valid_management_token_is_401(headers: dict[str, str], detail: str) -> None:
    async with running() as h:
        answer = await h.http.get("/v2/rooms", headers=headers)
        assert answer.status_code == 401
        assert answer.json() == {"code": 401, "message": "Token validation error", "details": [detail]}


async def test_rest_refuses_wrong_secret_wrong_key_expired_and_app_tokens() -> None:
    async with running() as h:
        room = await h.create_room("exam-1")
        cases = {
            "invalid token signature": h.auth(secret="another-secret-" + "z" * 32),
            "invalid access key": h.auth(access_key="someone-else"),
            "token is expired": h.auth(now=time.time() - 7200, ttl_s=600),
            "token is not valid yet": h.auth(now=time.time() + 600),
            "invalid token type: expected management, got app": {
                "Authorization": f"Bearer {h.app_token(room['id'], 'cand-1')}"
            },
        }
        for detail, headers in cases.items():
            answer = await h.http.get(f"/v2/rooms/{room['id']}", headers=headers)
            assert answer.status_code == 401, detail
            assert answer.json() == {"code": 401, "message": "Token validation error", "details": [detail]}
        assert (await h.http.get(f"/v2/rooms/{room['id']}", headers=h.auth())).status_code == 200
