"""Session tokens on a real hub, over the WebSocket and the HTTP API alike: the audience and issuer
(HUB_JWT_AUDIENCE, HUB_JWT_ISSUER), the lifetime ceiling (HUB_JWT_MAX_TTL_S), and RS256/ES256 tokens
checked with the host's JWKS (HUB_JWKS_URL, served by a real HTTP server) across a key rotation."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from websockets.exceptions import ConnectionClosed

from server.jwks import UnknownKey
from server.verifier import UNKNOWN_KID_REFETCH_S, host_keys
from tests.client import open_client
from tests.conftest import API_KEY, SECRET, create_event
from tests.fake_clock import FakeClock
from tests.jwks_support import JwksServer, SigningKey
from tests.polling import eventually
from tests.servers import HubProcess, start_hub

AUDIENCE = "proctorhub-tests"
ISSUER = "https://exam.example"
EVENT = "tokens"
MAX_TTL_S = 3600


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    server = JwksServer([SigningKey.rsa("key-a")])
    yield server
    server.close()


@pytest.fixture
def hub(jwks: JwksServer) -> Iterator[HubProcess]:
    process = start_hub(
        {
            "HUB_SECRET": SECRET,
            "HUB_API_KEY": API_KEY,
            "LOG_LEVEL": "WARNING",
            "HUB_JWT_AUDIENCE": AUDIENCE,
            "HUB_JWT_ISSUER": ISSUER,
            "HUB_JWT_MAX_TTL_S": str(MAX_TTL_S),
            "HUB_JWKS_URL": jwks.url,
        }
    )
    create_event(process, EVENT)
    yield process
    process.stop()


def hs256(user: str, **changes: Any) -> str:
    """An admin token of EVENT signed with HUB_SECRET; a change to `...` removes the claim."""
    now = int(time.time())
    claims = {"sub": user, "event": EVENT, "role": "admin", "iat": now, "exp": now + 600}
    claims |= {"aud": AUDIENCE, "iss": ISSUER}
    claims.update(changes)
    return jwt.encode({k: v for k, v in claims.items() if v is not ...}, SECRET, algorithm="HS256")


async def over_websocket(hub: HubProcess, token: str) -> tuple[str, str]:
    """("hello", ""), or the close code and reason the hub answered the auth with."""
    client = await open_client(hub.ws)
    await client.send("auth", {"token": token})
    try:
        return (await client.recv(5))["type"], ""
    except ConnectionClosed as closed:
        return (str(closed.rcvd.code), closed.rcvd.reason) if closed.rcvd else ("no close frame", "")


def over_api(hub: HubProcess, token: str) -> httpx.Response:
    return httpx.get(f"{hub.http}/api/v1/events/{EVENT}", headers={"Authorization": f"Bearer {token}"})


async def assert_accepted(hub: HubProcess, token: str) -> None:
    assert await over_websocket(hub, token) == ("hello", "")
    answer = over_api(hub, token)
    assert answer.status_code == 200, answer.text


async def assert_refused(hub: HubProcess, token: str, reason: str) -> None:
    code, close_reason = await over_websocket(hub, token)
    assert code == "4401" and reason in close_reason, (code, close_reason)
    answer = over_api(hub, token)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "invalid_credentials"
    assert reason in answer.json()["error"]["message"]


async def test_audience_issuer_and_lifetime_are_checked(hub: HubProcess) -> None:
    await assert_accepted(hub, hs256("right"))
    await assert_accepted(hub, hs256("listed", aud=["another-service", AUDIENCE]))
    await assert_refused(hub, hs256("wrong-aud", aud="another-service"), "'aud'")
    await assert_refused(hub, hs256("no-aud", aud=...), "'aud'")
    await assert_refused(hub, hs256("wrong-iss", iss="https://evil.example"), "'iss'")
    await assert_refused(hub, hs256("no-iss", iss=...), "'iss'")
    now = int(time.time())
    await assert_refused(hub, hs256("long", iat=now, exp=now + MAX_TTL_S + 60), "longer than")
    # an iat in the future does not stretch the ceiling
    await assert_refused(hub, hs256("late-iat", iat=now + 7200, exp=now + 7200 + 600), "longer than")


async def test_minted_sessions_carry_audience_and_issuer_and_respect_the_ceiling(hub: HubProcess) -> None:
    url = f"{hub.http}/api/v1/events/{EVENT}/sessions"
    auth = {"Authorization": f"Bearer {API_KEY}"}
    too_long = httpx.post(
        url, json={"user_id": "c1", "role": "candidate", "ttl_s": MAX_TTL_S + 1}, headers=auth
    )
    assert too_long.status_code == 400 and "HUB_JWT_MAX_TTL_S" in too_long.text
    minted = httpx.post(url, json={"user_id": "a1", "role": "admin", "ttl_s": MAX_TTL_S}, headers=auth)
    assert minted.status_code == 201, minted.text
    token = minted.json()["token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["aud"], claims["iss"]) == (AUDIENCE, ISSUER)
    await assert_accepted(hub, token)


@pytest.mark.parametrize("first", ["websocket", "api"])
async def test_jwks_key_rotation(hub: HubProcess, jwks: JwksServer, first: str) -> None:
    key_a = jwks.keys[0]
    await eventually(lambda: jwks.fetches >= 1, what="the hub's first JWKS fetch")
    claims = {"aud": AUDIENCE, "iss": ISSUER}
    await assert_accepted(hub, key_a.sign("with-a", "admin", EVENT, **claims))

    key_b = SigningKey.ec("key-b")
    jwks.keys = [key_b]  # the host rotates: a new kid the hub has not seen
    with_b = key_b.sign("with-b", "admin", EVENT, **claims)
    if first == "websocket":  # whichever door meets the new kid first fetches the JWKS again
        assert await over_websocket(hub, with_b) == ("hello", "")
    else:
        assert over_api(hub, with_b).status_code == 200
    await assert_accepted(hub, with_b)

    stranger = SigningKey.rsa("key-c")  # signs well, but the host never published it
    await assert_refused(hub, stranger.sign("with-c", "admin", EVENT, **claims), "not in the host's JWKS")
    # a key of the JWKS under another kid's name is no key at all
    forged = jwt.encode(
        {
            "sub": "x",
            "event": EVENT,
            "role": "admin",
            "iat": int(time.time()),
            "exp": int(time.time()) + 60,
            **claims,
        },
        stranger.private,
        algorithm="RS256",
        headers={"kid": "key-b"},
    )
    await assert_refused(hub, forged, "is not a RS256 key")


async def test_unknown_kids_fetch_the_jwks_at_most_once_per_gap(jwks: JwksServer) -> None:
    """Made-up kids cannot make the hub hammer the host: one refetch per UNKNOWN_KID_REFETCH_S."""
    clock = FakeClock()
    async with httpx.AsyncClient() as http:
        keys = host_keys(jwks.url, http, clock=clock)
        await keys.refresh()
        assert jwks.fetches == 1 and await keys.key("key-a") is not None
        with pytest.raises(UnknownKey):
            await keys.key("made-up-1")
        assert jwks.fetches == 2  # an unknown kid: fetched again at once
        for n in range(5):
            with pytest.raises(UnknownKey):
                await keys.key(f"made-up-{n}")
        assert jwks.fetches == 2
        jwks.keys.append(SigningKey.ec("key-b"))
        clock.now += UNKNOWN_KID_REFETCH_S - 0.1
        with pytest.raises(UnknownKey):
            await keys.key("key-b")
        assert jwks.fetches == 2
        clock.now += 0.1
        assert await keys.key("key-b") is not None and jwks.fetches == 3
