"""The remote key-set cache (server/jwks.py) as the LTI tool sets it (keys expire after an hour), against
a real JWKS app over httpx's ASGI transport, with a clock the test moves: refetch on an unknown kid, at
most every 30 s, one fetch for many callers, a failing set said so."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.jwks import KeySet, KeySets, KeySetUnavailable, UnknownKey
from server.lti.toolkey import public_jwk
from tests.fake_clock import FakeClock

URL = "http://lms.test/jwks"


class Publisher:
    """A platform's JWKS endpoint: the keys it publishes now, and how often it was asked."""

    def __init__(self) -> None:
        self.kids: list[str] = []
        self.requests = 0
        self.status = 200
        self.gate: asyncio.Event | None = None
        self.body: bytes | None = None

    def publish(self, kid: str) -> None:
        self.kids.append(kid)

    async def jwks(self, request: Request) -> Response:
        self.requests += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.status != 200:
            return Response("down", status_code=self.status)
        if self.body is not None:
            return Response(self.body, media_type="application/json")
        return JSONResponse({"keys": [public_jwk(KEY.public_key(), kid) for kid in self.kids]})


KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
async def setup() -> AsyncIterator[tuple[Publisher, KeySets, FakeClock]]:
    publisher = Publisher()
    app = Starlette(routes=[Route("/jwks", publisher.jwks)])
    clock = FakeClock()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        yield publisher, KeySets(http, clock=clock, refetch_s=30.0, max_age_s=3600.0), clock


async def test_a_known_kid_is_served_from_the_cache(setup: tuple[Publisher, KeySets, FakeClock]) -> None:
    publisher, sets, clock = setup
    publisher.publish("k1")
    assert (await sets.key(URL, "k1")).key_id == "k1"
    clock.now += 29
    assert (await sets.key(URL, "k1")).key_id == "k1"
    assert publisher.requests == 1


async def test_an_unknown_kid_refetches_at_most_every_30_s(
    setup: tuple[Publisher, KeySets, FakeClock],
) -> None:
    publisher, sets, clock = setup
    publisher.publish("k1")
    await sets.key(URL, "k1")
    publisher.publish("k2")  # the platform rotated just after our fetch
    with pytest.raises(UnknownKey):
        await sets.key(URL, "k2")
    with pytest.raises(UnknownKey):
        await sets.key(URL, "forged")
    assert publisher.requests == 1
    clock.now += 30
    assert (await sets.key(URL, "k2")).key_id == "k2"
    with pytest.raises(UnknownKey):
        await sets.key(URL, "forged")
    assert publisher.requests == 2


async def test_the_set_is_fetched_again_when_it_is_old(setup: tuple[Publisher, KeySets, FakeClock]) -> None:
    publisher, sets, clock = setup
    publisher.publish("k1")
    await sets.key(URL, "k1")
    clock.now += 3600
    await sets.key(URL, "k1")
    assert publisher.requests == 2


async def test_concurrent_callers_share_one_fetch(setup: tuple[Publisher, KeySets, FakeClock]) -> None:
    publisher, sets, _clock = setup
    publisher.publish("k1")
    publisher.gate = asyncio.Event()
    waiting = [asyncio.create_task(sets.key(URL, "k1")) for _ in range(5)]
    await asyncio.sleep(0)
    publisher.gate.set()
    keys = await asyncio.gather(*waiting)
    assert {k.key_id for k in keys} == {"k1"}
    assert publisher.requests == 1


async def test_no_kid_takes_the_only_key(setup: tuple[Publisher, KeySets, FakeClock]) -> None:
    publisher, sets, clock = setup
    publisher.publish("k1")
    assert (await sets.key(URL, None)).key_id == "k1"
    publisher.publish("k2")
    clock.now += 3600
    with pytest.raises(UnknownKey):
        await sets.key(URL, None)


async def test_a_failing_set_says_so_and_is_asked_again_after_30_s(
    setup: tuple[Publisher, KeySets, FakeClock],
) -> None:
    publisher, sets, clock = setup
    publisher.status = 503
    for _ in range(3):
        with pytest.raises(KeySetUnavailable, match="HTTP 503"):
            await sets.key(URL, "k1")
    assert publisher.requests == 1
    clock.now += 30
    publisher.status = 200
    publisher.body = b'{"keys": "not a list"}'
    with pytest.raises(KeySetUnavailable, match="not a valid JWKS"):
        await sets.key(URL, "k1")
    clock.now += 30
    publisher.body = None
    publisher.publish("k1")
    assert (await sets.key(URL, "k1")).key_id == "k1"
    assert publisher.requests == 3


async def test_an_lms_key_is_not_used_past_its_age_when_the_set_cannot_be_fetched(
    setup: tuple[Publisher, KeySets, FakeClock],
) -> None:
    publisher, sets, clock = setup
    publisher.publish("k1")
    await sets.key(URL, "k1")
    publisher.status = 503
    clock.now += 3600
    with pytest.raises(KeySetUnavailable, match="HTTP 503"):
        await sets.key(URL, "k1")


async def test_host_keys_stay_usable_while_the_host_is_down() -> None:
    """The verifier's setting (max_age_s=None): a host that is down logs out nobody."""
    publisher = Publisher()
    app = Starlette(routes=[Route("/jwks", publisher.jwks)])
    clock = FakeClock()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        keys = KeySet(URL, http, max_age_s=None, refetch_s=30.0, clock=clock)
        publisher.publish("k1")
        await keys.refresh()
        publisher.status = 503
        clock.now += 86_400
        await keys.refresh()  # fails, and says so in the log only
        assert (await keys.key("k1")).key_id == "k1"
        with pytest.raises(UnknownKey):  # the set is still usable: an unknown kid is just unknown
            await keys.key("k9")
        assert publisher.requests == 3
