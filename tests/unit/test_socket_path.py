"""The socket fast path: `/ws` to the endpoint (with the trusted proxies' client), the rest to the app."""

from __future__ import annotations

import asyncio
from typing import Any

from server.api.client_address import networks
from server.api.socket_path import SocketPath


class Recorder:
    """An ASGI app that remembers the scopes it was called with."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)


def _scope(kind: str, path: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "path": path, "headers": [], "client": ("127.0.0.1", 5000), **extra}


def _route(scope: dict[str, Any], trusted: tuple[str, ...] = ()) -> tuple[Recorder, Recorder]:
    app, endpoint = Recorder(), Recorder()
    asyncio.run(SocketPath(app, endpoint, networks(trusted))(scope, None, None))  # type: ignore[arg-type]
    return app, endpoint


def test_the_socket_path_goes_to_the_endpoint_and_nothing_else_does() -> None:
    app, endpoint = _route(_scope("websocket", "/ws"))
    assert len(endpoint.scopes) == 1 and app.scopes == []
    for scope in (
        _scope("http", "/ws"),
        _scope("websocket", "/ws/other"),
        _scope("websocket", "/wss"),
        {"type": "lifespan"},
    ):
        app, endpoint = _route(scope)
        assert app.scopes == [scope] and endpoint.scopes == []


def test_a_root_path_is_kept() -> None:
    app, endpoint = _route(_scope("websocket", "/hub/ws", root_path="/hub"))
    assert len(endpoint.scopes) == 1 and app.scopes == []


def test_the_endpoint_sees_the_client_a_trusted_proxy_forwarded() -> None:
    headers = [(b"x-forwarded-for", b"203.0.113.9"), (b"x-forwarded-proto", b"https")]
    scope = _scope("websocket", "/ws", headers=headers, client=("10.0.0.7", 4000))
    _, endpoint = _route(scope, trusted=("10.0.0.7",))
    assert endpoint.scopes[0]["client"] == ("203.0.113.9", 0) and endpoint.scopes[0]["scheme"] == "wss"
    _, endpoint = _route(scope)  # no trusted proxy: the peer as it is
    assert endpoint.scopes[0]["client"] == ("10.0.0.7", 4000)
