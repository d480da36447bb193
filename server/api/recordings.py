"""`GET /api/v1/events/{event_id}/candidates/{candidate_id}/recordings`: a candidate's archived segments.

Read from the candidate's manifest, each segment with a download URL valid ARCHIVE_URL_TTL_S
(presigned S3, or a signed `/archive/...` link made absolute against this request's origin).
Admins of the event and its proctors may read it.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urljoin

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server.api.allocation import event_id_of
from server.api.errors import ApiError
from server.api.security import caller
from server.recording.archive.contract import Archive, ArchiveError, Segment
from server.recording.archive.layout import manifest_key

log = logging.getLogger("proctorhub.api")


async def recordings(request: Request) -> JSONResponse:
    candidate_id: str = request.path_params["candidate_id"]
    (await caller(request)).require_reader(request.path_params["event_id"])
    event_id = await event_id_of(request)
    archive: Archive = request.app.state.archive
    ttl_s = max(1, round(request.app.state.settings.archive_url_ttl_s))
    try:
        manifest = await archive.read_manifest(event_id, candidate_id)
        if manifest is None:
            raise ApiError(404, "not_found", f"candidate {candidate_id!r} has no recordings in {event_id!r}")
        segments = [
            {
                **segment.to_dict(),
                "url": urljoin(str(request.base_url), await archive.url(segment.key, expires_s=ttl_s)),
            }
            for segment in _segments(manifest, event_id, candidate_id)
        ]
    except ArchiveError as exc:
        log.warning("recordings of %s/%s unavailable: %s", event_id, candidate_id, exc)
        raise ApiError(503, "unavailable", "the archive cannot be read right now") from None
    prefix = request.app.state.settings.s3_prefix
    return JSONResponse(
        {
            "event_id": event_id,
            "candidate_id": candidate_id,
            "segments": segments,
            "refused": _refused(manifest),
            "manifest_key": manifest_key(prefix, event_id, candidate_id),
        }
    )


def _segments(manifest: dict[str, Any], event_id: str, candidate_id: str) -> list[Segment]:
    """The manifest's well-formed segments; a bad entry is logged and left out, never a 500."""
    found: list[Segment] = []
    raw = manifest.get("segments")
    for entry in raw if isinstance(raw, list) else []:
        try:
            found.append(Segment.from_dict(entry))
        except ValueError as exc:
            log.warning("manifest of %s/%s has a bad segment (%s): %r", event_id, candidate_id, exc, entry)
    return found


REFUSED_FIELDS = ("peer_id", "room_id", "session_id", "recording_id", "reason", "error")


def _refused(manifest: dict[str, Any]) -> list[dict[str, str]]:
    """Recordings the archiver refused to read (their source was not one 100ms would send)."""
    raw = manifest.get("refused")
    return [
        {name: str(entry.get(name, "")) for name in REFUSED_FIELDS}
        for entry in (raw if isinstance(raw, list) else [])
        if isinstance(entry, dict)
    ]


routes = [
    Route("/api/v1/events/{event_id}/candidates/{candidate_id}/recordings", recordings, methods=["GET"]),
]
