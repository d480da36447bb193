"""The hub's socket path straight from the server, past the web app's middleware and router.

An idle socket costs what its ASGI call chain holds for as long as it is open. Through Starlette, a
socket sits under about ten suspended coroutines (the app, two error wrappers, our two middlewares,
the router, the route), each kept alive for hours by the one open socket. `GET /ws` needs none of
them: the endpoint answers its own errors and only reads the headers. So the server's app is this
thin function, which hands `/ws` to the endpoint (with the trusted proxies' view of the client, as
every other path gets) and everything else, the lifespan included, to the web app. It is a plain
function returning the callee's coroutine, so it adds no frame of its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from server.api.client_address import Network, forwarded_scope

SOCKET_PATH = "/ws"


class SocketPath:
    """ASGI 3 app: `/ws` to `endpoint`, the rest to `app` (served with uvicorn's `interface="asgi3"`:
    `__call__` is not itself a coroutine function, so uvicorn cannot tell the interface by looking)."""

    def __init__(self, app: ASGIApp, endpoint: ASGIApp, trusted: Sequence[Network]) -> None:
        self.app = app
        self.endpoint = endpoint
        self.trusted = trusted

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] == "websocket" and scope["path"] == scope.get("root_path", "") + SOCKET_PATH:
            return self.endpoint(forwarded_scope(scope, self.trusted), receive, send)
        return self.app(scope, receive, send)
