"""Who is really calling: the client address behind the proxies the operator trusts (HUB_TRUSTED_PROXIES).

uvicorn runs with its own proxy handling off (server/serve.py), so `FORWARDED_ALLOW_IPS=*` cannot make
anyone's `X-Forwarded-For` believed. Here, `X-Forwarded-For` counts only when the direct peer is a
trusted proxy; the chain is then read right to left (each proxy appends the address it saw), skipping
trusted hops, and the first hop that is not a trusted proxy is the client. Whatever a client writes at
the left of the header is never reached while an untrusted hop stands to its right.

`TrustedProxies` (ASGI middleware) puts that address in the scope's `client`, and the scheme of a
trusted `X-Forwarded-Proto` in its `scheme`, so every reader (the webhook allow-list, the URLs built
from the request) sees the same answer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_SCHEMES = {"http", "https", "ws", "wss"}


def parse_address(raw: str) -> Address | None:
    """An IP address, also as `v4:port` or `[v6]:port` (as some proxies write hops); None if not one."""
    raw = raw.strip()
    if raw.startswith("["):
        raw = raw[1 : raw.find("]")] if "]" in raw else raw
    elif raw.count(":") == 1:
        raw = raw.partition(":")[0]
    try:
        return ipaddress.ip_address(raw)
    except ValueError:
        return None


def _trusted(address: Address | None, trusted: Sequence[Network]) -> bool:
    return address is not None and any(address in net for net in trusted)


def client_address(peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[Network]) -> str | None:
    """The client's address: the direct `peer`, or the nearest untrusted hop of `X-Forwarded-For` (its
    values, in order) when the peer is a trusted proxy. An unreadable hop is returned as it is (it is
    no address, so an allow-list refuses it) rather than skipped."""
    if peer is None or not _trusted(parse_address(peer), trusted):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    client = peer
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            return hop
        client = str(address)
        if not _trusted(address, trusted):
            return client
    return client  # every hop is a trusted proxy: the furthest one is all we know


def networks(entries: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry) for entry in entries)


class TrustedProxies:
    """Rewrites `client` and `scheme` of HTTP and WebSocket scopes from a trusted proxy's headers."""

    def __init__(self, app: ASGIApp, trusted: Iterable[str]) -> None:
        self.app = app
        self.trusted = networks(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(forwarded_scope(scope, self.trusted), receive, send)


def forwarded_scope(scope: Scope, trusted: Sequence[Network]) -> Scope:
    """The scope with `client` and `scheme` as a trusted proxy forwarded them (the scope itself if the
    peer is no trusted proxy)."""
    if scope["type"] not in ("http", "websocket") or not trusted or not scope.get("client"):
        return scope
    peer = scope["client"][0]
    if not _trusted(parse_address(peer), trusted):
        return scope
    scope = dict(scope)
    headers = scope["headers"]
    forwarded = [v.decode("latin-1") for k, v in headers if k == b"x-forwarded-for"]
    host = client_address(peer, forwarded, trusted)
    scope["client"] = (host, 0)
    for name, value in headers:
        proto = value.decode("latin-1").strip().lower()
        if name == b"x-forwarded-proto" and proto in _SCHEMES:
            secure = proto in ("https", "wss")
            if scope["type"] == "websocket":
                scope["scheme"] = "wss" if secure else "ws"
            else:
                scope["scheme"] = "https" if secure else "http"
    return scope
