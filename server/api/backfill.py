"""Browser backfill over HTTP (extension E15): a candidate's page announces a segment, uploads it
(to S3 by a presigned PUT, or to the hub's signed URL below when the archive is the local folder),
and asks the hub to verify it. The candidate's session JWT authorises the first two; the signed
URL authorises the upload (like a presigned S3 URL, it carries no bearer)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server.api.allocation import event_id_of
from server.api.errors import ApiError
from server.api.events import json_body
from server.api.security import caller
from server.recording.archive.contract import ArchiveError
from server.recording.backfill.checks import Refused, announcement
from server.recording.backfill.service import (
    BackfillService,
    RequestClosed,
    SegmentRejected,
    UnknownSegment,
    UploadTooLarge,
    signature_ok,
)


def _service(request: Request) -> BackfillService:
    service: BackfillService = request.app.state.backfill
    return service


async def _candidate(request: Request) -> tuple[str, str]:
    """(event, candidate) when the caller is that candidate's session; else 401/403/404."""
    who = await caller(request)
    event_id, candidate_id = request.path_params["event_id"], request.path_params["candidate_id"]
    session = who.session
    if session is None or session.role != "candidate":
        raise ApiError(403, "forbidden", "only the candidate's own session may upload its recording")
    if session.event_id != event_id or session.user_id != candidate_id:
        raise ApiError(403, "forbidden", "the session is not this candidate's in this event")
    await event_id_of(request)
    return event_id, candidate_id


@contextlib.contextmanager
def _answers(refused: tuple[int, str] = (422, "invalid")) -> Iterator[None]:
    """The service's refusals as API errors: `refused` is the status and code of a Refused."""
    try:
        yield
    except UploadTooLarge as exc:
        raise ApiError(413, "too_large", str(exc)) from None
    except Refused as exc:
        raise ApiError(refused[0], refused[1], str(exc)) from None
    except RequestClosed as exc:
        raise ApiError(409, "request_closed", str(exc)) from None
    except UnknownSegment as exc:
        raise ApiError(404, "not_found", f"no segment {exc} was announced") from None
    except SegmentRejected as exc:
        raise ApiError(422, "segment_rejected", str(exc)) from None
    except ArchiveError as exc:
        raise ApiError(
            503, "unavailable", f"the archive could not be reached ({exc.cause}); try again"
        ) from None


async def announce(request: Request) -> JSONResponse:
    event_id, candidate_id = await _candidate(request)
    service = _service(request)
    with _answers():
        segment = announcement(await json_body(request), service.limits)
        return JSONResponse(await service.announce(event_id, candidate_id, segment))


async def complete(request: Request) -> JSONResponse:
    event_id, candidate_id = await _candidate(request)
    with _answers():
        segment_id = request.path_params["segment_id"]
        return JSONResponse(await _service(request).complete(event_id, candidate_id, segment_id))


async def upload(request: Request) -> JSONResponse:
    """`PUT /api/v1/backfill/uploads/{segment}?e=&c=&exp=&sig=`: the body is the segment."""
    segment_id = request.path_params["segment_id"]
    q = request.query_params
    event_id, candidate_id = q.get("e", ""), q.get("c", "")
    now = request.app.state.hub.clock()
    secret = request.app.state.settings.hub_secret
    if not signature_ok(secret, event_id, candidate_id, segment_id, q.get("exp", ""), q.get("sig", ""), now):
        raise ApiError(403, "forbidden", "the upload URL is not valid (signature or expiry)")
    put = getattr(request.app.state.archive, "put_upload", None)
    if put is None:
        raise ApiError(404, "not_found", "uploads go to the bucket: ask for an upload again")

    async def chunks() -> AsyncIterator[bytes]:
        async for chunk in request.stream():
            if chunk:
                yield chunk

    with _answers(refused=(415, "unsupported_media_type")):
        content_type = request.headers.get("content-type")
        size = await _service(request).receive(
            event_id, candidate_id, segment_id, content_type, chunks(), put
        )
    return JSONResponse({"size": size})


routes = [
    Route("/api/v1/events/{event_id}/candidates/{candidate_id}/backfill", announce, methods=["POST"]),
    Route(
        "/api/v1/events/{event_id}/candidates/{candidate_id}/backfill/{segment_id}/complete",
        complete,
        methods=["POST"],
    ),
    Route("/api/v1/backfill/uploads/{segment_id}", upload, methods=["PUT"]),
]
