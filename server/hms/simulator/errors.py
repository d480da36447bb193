"""Errors as 100ms answers them: `{"code": <status>, "message": ..., "details": [...]}` (contract §2.1).

    HmsError(status, message, details)   any refusal; `code` mirrors the HTTP status
     └── TokenRejected(reason, rest=...)  a JWT failed a check (§1.4, §2.1): 401

Handlers raise; `exception_handlers` turns every one (and Starlette's own 404/405) into that body.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


class HmsError(Exception):
    def __init__(self, status: int, message: str, details: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = list(details)

    def body(self) -> dict[str, object]:
        return {"code": self.status, "message": self.message, "details": self.details}


class TokenRejected(HmsError):
    """A token failed verification; `reason` names the failed check.

    On the REST API the message is always "Token validation error" with the reason in `details`
    (as 100ms answers); at join (the media plane) the message is the reason itself.
    """

    def __init__(self, reason: str, *, rest: bool = False) -> None:
        super().__init__(401, "Token validation error" if rest else reason, [reason])
        self.reason = reason


def bad_request(message: str, *details: str) -> HmsError:
    return HmsError(400, message, details)


def not_found(message: str) -> HmsError:
    return HmsError(404, message, [])


async def _hms_error(request: Request, exc: Exception) -> Response:
    exc = cast(HmsError, exc)  # Starlette dispatches by type
    return JSONResponse(exc.body(), status_code=exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    exc = cast(HTTPException, exc)
    body = {"code": exc.status_code, "message": str(exc.detail).lower(), "details": []}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


exception_handlers = {HmsError: _hms_error, HTTPException: _http_error}
