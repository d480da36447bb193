"""`GET /archive/{key}`: the local archive's files, for links signed by `LocalArchive.url`.

Checked in this order: a safe key (no `..`, 400), a good unexpired signature (403), an existing
file (404). FileResponse answers Range requests, so a player can seek. Recordings and manifests are
served inline with nosniff; anything else as an attachment under a sandboxing CSP (layout.py).
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Route

from server.api.errors import ApiError
from server.recording.archive.layout import serving_headers
from server.recording.archive.local import LocalArchive, signature_problem


async def archive_file(request: Request) -> FileResponse:
    archive = request.app.state.archive
    if not isinstance(archive, LocalArchive):
        raise ApiError(404, "not_found", "recordings are kept in S3: use their presigned URLs")
    key: str = request.path_params["key"]
    path = archive.file_for(key)
    if path is None:
        raise ApiError(400, "invalid", "key: must be a relative path without '.' or '..' segments")
    problem = signature_problem(
        request.app.state.settings.hub_secret,
        key,
        request.query_params.get("exp"),
        request.query_params.get("sig"),
        now=time.time(),
    )
    if problem is not None:
        raise ApiError(403, "forbidden", problem)
    if not path.is_file():
        raise ApiError(404, "not_found", f"no file at {key!r}")
    headers = serving_headers(key)
    return FileResponse(
        path,
        media_type=headers.pop("Content-Type"),
        headers={**headers, "Cache-Control": "private, no-store"},
    )


routes = [Route("/archive/{key:path}", archive_file, methods=["GET", "HEAD"])]
