"""A candidate page's backfill uploader in Python (extension E15), for hub tests and the load tester.

The page keeps its own recording as segments (here: generated WebM files of the right length) and,
for each `backfill.request`, announces the segments that overlap the window, PUTs each where the hub
says, and asks the hub to verify it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import httpx

from load_tests.backfill.webm_writer import webm

CONTENT_TYPE = "video/webm;codecs=vp8"


@dataclass(frozen=True)
class LocalSegment:
    seq: int
    start_ms: int
    end_ms: int
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def announcement(self, request_id: str, *, sha256: str | None = None) -> dict[str, Any]:
        return {
            "request_id": request_id,
            "seq": self.seq,
            "start": self.start_ms,
            "end": self.end_ms,
            "size": len(self.data),
            "sha256": sha256 or self.sha256,
            "content_type": CONTENT_TYPE,
        }


def recorded(start_ms: int, end_ms: int, *, segment_s: float = 2.0, fps: float = 5.0) -> list[LocalSegment]:
    """What a page that recorded [start, end) holds: back-to-back segments of `segment_s`."""
    out: list[LocalSegment] = []
    step = int(segment_s * 1000)
    at = start_ms
    while at < end_ms:
        end = min(at + step, end_ms)
        out.append(LocalSegment(len(out), at, end, webm((end - at) / 1000, fps=fps)))
        at = end
    return out


def overlapping(segments: list[LocalSegment], start_ms: int, end_ms: int) -> list[LocalSegment]:
    return [s for s in segments if s.end_ms > start_ms and s.start_ms < end_ms]


class Uploader:
    """One candidate's uploads: `http` is a client of the hub (base_url), `token` its session JWT."""

    def __init__(self, http: httpx.AsyncClient, event_id: str, candidate_id: str, token: str) -> None:
        self._http = http
        self._base = f"/api/v1/events/{event_id}/candidates/{candidate_id}/backfill"
        self._auth = {"Authorization": f"Bearer {token}"}

    async def announce(
        self, request_id: str, segment: LocalSegment, *, sha256: str | None = None
    ) -> httpx.Response:
        return await self._http.post(
            self._base, json=segment.announcement(request_id, sha256=sha256), headers=self._auth
        )

    async def put(self, upload: dict[str, Any], data: bytes) -> httpx.Response:
        """PUT to the hub's URL (relative) or to the bucket's presigned URL (absolute)."""
        return await self._http.request(
            upload["method"], upload["url"], content=data, headers=upload["headers"]
        )

    async def complete(self, segment_id: str) -> httpx.Response:
        return await self._http.post(f"{self._base}/{segment_id}/complete", headers=self._auth)

    async def send(self, request_id: str, segment: LocalSegment) -> dict[str, Any]:
        """Announce, upload and complete one segment; the hub's last answer (raises on refusal)."""
        answer = await self.announce(request_id, segment)
        answer.raise_for_status()
        body: dict[str, Any] = answer.json()
        if body["state"] == "archived":
            return body
        (await self.put(body["upload"], segment.data)).raise_for_status()
        done = await self.complete(body["segment_id"])
        done.raise_for_status()
        return {**done.json(), "segment_id": body["segment_id"]}
