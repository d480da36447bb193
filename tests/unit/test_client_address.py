"""The client address behind trusted proxies (HUB_TRUSTED_PROXIES): X-Forwarded-For read right to left,
and only when the direct peer is trusted."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server.api.client_address import TrustedProxies, client_address, networks, parse_address

PROXIES = networks(["10.0.0.1/32", "172.16.0.0/12", "::1/128"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "client"),
    [
        # no trusted proxies: the peer, whatever the header says
        ("203.0.113.9", ["198.51.100.1"], (), "203.0.113.9"),
        ("10.0.0.1", ["198.51.100.1"], (), "10.0.0.1"),
        # an untrusted peer's header is not read
        ("203.0.113.9", ["198.51.100.1"], PROXIES, "203.0.113.9"),
        # a trusted peer: the hop it saw
        ("10.0.0.1", ["198.51.100.1"], PROXIES, "198.51.100.1"),
        ("10.0.0.1", [], PROXIES, "10.0.0.1"),
        # right to left, skipping trusted hops; what the client wrote at the left is never reached
        ("10.0.0.1", ["6.6.6.6, 198.51.100.1, 172.16.3.4"], PROXIES, "198.51.100.1"),
        ("10.0.0.1", ["6.6.6.6", "198.51.100.1, 172.16.3.4"], PROXIES, "198.51.100.1"),
        # every hop trusted: the furthest
        ("10.0.0.1", ["172.16.0.2, 172.16.0.3"], PROXIES, "172.16.0.2"),
        # ports and IPv6
        ("::1", ["[2001:db8::7]:443"], PROXIES, "2001:db8::7"),
        ("10.0.0.1", ["198.51.100.1:5555"], PROXIES, "198.51.100.1"),
        # an unreadable hop is returned as is (no allow-list matches it), not skipped
        ("10.0.0.1", ["198.51.100.1, not-an-ip"], PROXIES, "not-an-ip"),
        (None, ["198.51.100.1"], PROXIES, None),
    ],
)
def test_client_address(
    peer: str | None, forwarded: list[str], trusted: tuple[object, ...], client: str | None
) -> None:
    assert client_address(peer, forwarded, trusted) == client  # type: ignore[arg-type]


@given(st.lists(st.ip_addresses().map(str), max_size=5), st.ip_addresses().map(str))
def test_an_untrusted_peer_is_always_the_client(spoofed: list[str], peer: str) -> None:
    if parse_address(peer) in networks(["10.0.0.1/32"])[0]:
        return
    assert client_address(peer, [", ".join(spoofed)], networks(["10.0.0.1/32"])) == peer


def _echo_app(trusted: list[str]) -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        assert request.client is not None
        return JSONResponse({"client": request.client.host, "scheme": request.url.scheme})

    return Starlette(routes=[Route("/", echo)], middleware=[Middleware(TrustedProxies, trusted=trusted)])


@pytest.mark.parametrize(
    ("peer", "trusted", "seen"),
    [
        ("10.0.0.1", ["10.0.0.1/32"], {"client": "198.51.100.1", "scheme": "https"}),
        ("10.0.0.2", ["10.0.0.1/32"], {"client": "10.0.0.2", "scheme": "http"}),
        ("10.0.0.1", [], {"client": "10.0.0.1", "scheme": "http"}),
    ],
)
async def test_the_middleware_rewrites_client_and_scheme_for_trusted_peers_only(
    peer: str, trusted: list[str], seen: dict[str, str]
) -> None:
    transport = httpx.ASGITransport(app=_echo_app(trusted), client=(peer, 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
        answer = await http.get(
            "/", headers={"X-Forwarded-For": "198.51.100.1", "X-Forwarded-Proto": "https"}
        )
    assert answer.json() == seen
