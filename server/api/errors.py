"""HTTP API errors: every failure leaves as `{"error": {"code", "message"}}` (docs/protocol.md, "HTTP API").

    Exception                    500  internal   logged with its traceback, never sent
    ├── ApiError                 its status and code, raised by endpoints and validation
    └── starlette HTTPException  its status, code from `HTTP_CODES` (404 not_found, ...)

`exception_handlers` is what the app registers so that this holds for every route,
including Starlette's own 404 and 405 answers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger("proctorhub.api")

HTTP_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    503: "unavailable",
}


class ApiError(Exception):
    """A refusal a client can act on: `status` is the HTTP status, `code` the wire error code."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers) if headers else None


def error_response(
    status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


async def _api_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, ApiError):  # registered for ApiError only; keeps the handler signature Starlette's
        raise exc
    return error_response(exc.status, exc.code, exc.message, headers=exc.headers)


async def _http_exception(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):
        raise exc
    if exc.status_code in (204, 304):  # no body allowed
        return Response(status_code=exc.status_code, headers=exc.headers)
    code = HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def _internal(request: Request, exc: Exception) -> Response:
    """The last resort: the client learns only that it failed; the log gets the traceback."""
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal", "internal error")


exception_handlers: dict[Any, Any] = {
    ApiError: _api_error,
    HTTPException: _http_exception,
    Exception: _internal,
}
