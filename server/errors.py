"""Errors that carry their wire answer.

The hub turns any of these into the documented answer in one place
(`hubs/endpoint.py`): a `Close` ends the connection with its close code, an
`Answer` is sent back as an `error` message and the connection stays open.

    HubError
    ├── Close                 close the socket with `code`
    │   ├── BadFrame          4400  not JSON/msgpack, no type, wrong field types
    │   ├── NotAuthenticated  4401  bad or expired session token, no auth first
    │   ├── Forbidden         4403  the role may not do that
    │   ├── AuthTimeout       4408  no auth within the deadline
    │   ├── RateLimited       4429  too many messages
    │   ├── TooBig            1009  frame over the size limit
    │   ├── TryLater          1013  overloaded, or a dependency failed under this connection
    │   │   └── SlowConsumer  1013  the client does not read its messages
    │   ├── OriginRefused     1008  Origin not allowed
    │   └── Draining          1012  this node is shutting down
    └── Answer                `error {code, message}`; the connection stays open
"""

from __future__ import annotations


class HubError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Close(HubError):
    code: int = 1011


class BadFrame(Close):
    code = 4400


class NotAuthenticated(Close):
    code = 4401


class Forbidden(Close):
    code = 4403


class AuthTimeout(Close):
    code = 4408


class RateLimited(Close):
    code = 4429


class TooBig(Close):
    code = 1009


class TryLater(Close):
    code = 1013


class SlowConsumer(TryLater):
    pass


class OriginRefused(Close):
    code = 1008


class Draining(Close):
    code = 1012


class Answer(HubError):
    """Answered with `error {code, message}`; `code` is a short snake_case string."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
