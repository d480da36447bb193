"""The hub's side of a page's uploads (extension E15): announce a segment, receive it, verify it.

`announce` answers `POST .../backfill`: the segment is archived already (idempotent per request and
sha256), or here is where to PUT it: a presigned S3 URL carrying the checksum, or the hub's own
signed URL when the archive is the local folder. `complete` reads back what was uploaded and judges
it (checks.py); a good segment becomes a `backfilled` signal in the candidate's timeline (which
satisfies its request, closes the gap's alert and lists it in the manifest), a bad one is deleted
and refused with the reason, and the page uploads it again.

Nothing the hub did not take stays in the archive: an announced segment's upload URL runs out
`upload_ttl_s` after the announcement, and once as long again has passed (time for a PUT begun
before to land) a segment still not archived (refused, never completed, its request closed
meanwhile) has its object deleted by `sweep` and is `abandoned` (or stays `rejected`); after half
that time `complete` no longer takes it, so no sweep deletes what is being archived. The sweep runs
after an evaluation of the candidate, which each announcement schedules for then.

Hub upload URLs: `/api/v1/backfill/uploads/{segment}?e=<event>&c=<candidate>&exp=<epoch s>&sig=<hex
HMAC-SHA256(HUB_SECRET, "backfill\\n" event "\\n" candidate "\\n" segment "\\n" exp)>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, Protocol
from urllib.parse import urlencode

import orjson

from server.recording.archive.contract import ArchiveError, SegmentSource
from server.recording.archive.layout import places
from server.recording.backfill.checks import Announcement, Limits, Refused, upload_problem, window_problem
from server.recording.backfill.requests import BackfillRequests
from server.recording.monitor.intervals import epoch_ms
from server.recording.monitor.timeline import Signal, Timeline
from server.store.backfill import BackfillStore

UPLOAD_PATH = "/api/v1/backfill/uploads/"
log = logging.getLogger("proctorhub.recording.backfill")

SegmentState = Literal["upload", "archived", "rejected", "abandoned"]
RETRY_SWEEP_S = 60.0
"""When a sweep could not reach the archive, it tries again this much later."""
ABANDONED = "it was not completed before its upload URL ran out: announce it again"


class RequestClosed(Exception):
    """The request is cancelled, satisfied or unknown (HTTP 409 `request_closed`)."""


class SegmentRejected(Exception):
    """The upload is not the announced segment; the message says why (HTTP 422 `segment_rejected`)."""


class UploadTooLarge(Refused):
    """More bytes were sent to the hub's URL than announced (HTTP 413)."""


class UnknownSegment(Exception):
    """No such segment was announced (HTTP 404)."""


class UploadTarget(Protocol):
    """What the archive does for uploads (LocalArchive, S3Archive)."""

    prefix: str

    async def presign_put(
        self, key: str, content_type: str, sha256_b64: str, expires_s: int
    ) -> str | None: ...
    async def read_upload(self, key: str, limit: int) -> tuple[bytes, str | None] | None: ...
    async def delete(self, key: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Held:
    """An announced segment as stored."""

    segment: Announcement
    key: str
    room_id: str
    state: SegmentState
    reason: str = ""
    uploaded_type: str | None = None
    expires: float = 0.0
    """When its latest upload URL runs out (epoch s)."""
    swept: bool = False
    """Its object was deleted by a sweep (until it is announced again)."""

    def dump(self) -> bytes:
        return orjson.dumps({**asdict(self), "segment": asdict(self.segment)})

    @classmethod
    def load(cls, raw: bytes) -> Held:
        data = orjson.loads(raw)
        return cls(**{**data, "segment": Announcement(**data["segment"])})


def upload_signature(secret: str, event_id: str, candidate_id: str, segment_id: str, exp: int) -> str:
    text = f"backfill\n{event_id}\n{candidate_id}\n{segment_id}\n{exp}"
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def signature_ok(
    secret: str, event_id: str, candidate_id: str, segment_id: str, exp: str, sig: str, now: float
) -> bool:
    if not exp.isdigit() or len(exp) > 12 or int(exp) < now:
        return False
    good = upload_signature(secret, event_id, candidate_id, segment_id, int(exp))
    return hmac.compare_digest(sig.encode(), good.encode())


def room_at(timeline: Timeline, at: float) -> str:
    """The room the candidate's 100ms peer was in at `at`, else its latest room."""
    for peer in timeline.peers:
        if peer.start is not None and peer.start <= at < (peer.end if peer.end is not None else float("inf")):
            return peer.room_id
    return timeline.room_id or "unassigned"


@dataclass(frozen=True)
class BackfillLinks:
    store: BackfillStore
    archive: UploadTarget
    requests: BackfillRequests
    timeline_of: Callable[[str, str], Awaitable[Timeline]]
    add_signals: Callable[[str, str, list[Signal]], Awaitable[None]]
    clock: Callable[[], float]
    secret: str
    check_at: Callable[[str, str, float], Awaitable[None]]
    """Evaluate the candidate again at that time (the sweep runs after an evaluation)."""


class BackfillService:
    def __init__(self, links: BackfillLinks, limits: Limits, *, upload_ttl_s: float = 900.0) -> None:
        self._links = links
        self.limits = limits
        self._ttl = max(1, int(upload_ttl_s))
        links.requests.sweeper = self.sweep

    async def _held(self, event_id: str, candidate_id: str, segment_id: str) -> Held | None:
        raw = await self._links.store.get_segment(event_id, candidate_id, segment_id)
        return None if raw is None else Held.load(raw)

    async def _put(self, event_id: str, candidate_id: str, held: Held) -> None:
        await self._links.store.put_segment(event_id, candidate_id, held.segment.segment_id, held.dump())

    # ------------------------------------------------------------------ announce

    async def announce(self, event_id: str, candidate_id: str, segment: Announcement) -> dict[str, Any]:
        """Where to upload `segment`, or that it is archived already. RequestClosed, Refused."""
        segment_id = segment.segment_id
        held = await self._held(event_id, candidate_id, segment_id)
        if held is not None and held.state == "archived":
            return {"segment_id": segment_id, "state": "archived", "key": held.key}
        request = await self._links.requests.request(event_id, candidate_id, segment.request_id)
        if request is None or request.state != "open":
            raise RequestClosed(f"request {segment.request_id!r} is not open")
        problem = window_problem(segment, request.start, request.end, self.limits)
        if problem is not None:
            raise Refused(problem)
        expires = self._links.clock() + self._ttl
        if held is None or held.segment != segment:
            key, room = await self._place(event_id, candidate_id, segment)
            held = Held(segment, key, room, "upload", expires=expires)
        else:
            held = replace(held, state="upload", reason="", expires=expires, swept=False)
        await self._put(event_id, candidate_id, held)
        sweep = expires + self._ttl
        await self._links.requests.sweep_at(event_id, candidate_id, sweep)
        await self._links.check_at(event_id, candidate_id, sweep)
        return {
            "segment_id": segment_id,
            "state": "upload",
            "upload": await self._target(event_id, candidate_id, held),
        }

    async def _place(self, event_id: str, candidate_id: str, segment: Announcement) -> tuple[str, str]:
        """The segment's key in the archive layout (the alternate when another segment holds it)."""
        room = room_at(await self._links.timeline_of(event_id, candidate_id), segment.start)
        source = SegmentSource(
            event_id=event_id,
            candidate_id=candidate_id,
            room_id=room,
            session_id="",
            peer_id="",
            recording_id=segment.segment_id,
            kind="backfill",
            source_path="segment.webm",
            presigned_url=None,
            started_at=segment.start,
            ended_at=segment.end,
            duration_s=segment.end - segment.start,
            size=segment.size,
        )
        primary, alternate = places(self._links.archive.prefix, source)
        others = await self._links.store.list_segments(event_id, candidate_id)
        taken = {Held.load(raw).key for sid, raw in others.items() if sid != segment.segment_id}
        return (alternate if primary in taken else primary), room

    async def _target(self, event_id: str, candidate_id: str, held: Held) -> dict[str, Any]:
        segment = held.segment
        checksum = base64.b64encode(bytes.fromhex(segment.sha256)).decode()
        url = await self._links.archive.presign_put(held.key, segment.content_type, checksum, self._ttl)
        if url is not None:
            headers = {"Content-Type": segment.content_type, "x-amz-checksum-sha256": checksum}
            return {"method": "PUT", "url": url, "headers": headers}
        exp = int(held.expires)
        sig = upload_signature(self._links.secret, event_id, candidate_id, segment.segment_id, exp)
        query = urlencode({"e": event_id, "c": candidate_id, "exp": exp, "sig": sig})
        return {
            "method": "PUT",
            "url": f"{UPLOAD_PATH}{segment.segment_id}?{query}",
            "headers": {"Content-Type": segment.content_type},
        }

    # ------------------------------------------------------------------ the hub's own upload URL

    async def receive(
        self,
        event_id: str,
        candidate_id: str,
        segment_id: str,
        content_type: str | None,
        chunks: AsyncIterator[bytes],
        put: Callable[[str, AsyncIterator[bytes], int], Awaitable[int | None]],
    ) -> int:
        """Keep an upload to the hub's URL. UnknownSegment; Refused for a wrong type, UploadTooLarge."""
        held = await self._held(event_id, candidate_id, segment_id)
        if held is None:
            raise UnknownSegment(repr(segment_id))
        if held.state == "archived":
            return 0  # already verified and kept: a retried PUT changes nothing
        if held.state != "upload":
            raise SegmentRejected(f"it is {held.state}: announce it again")  # a PUT after its refusal
        if (
            content_type is None
            or content_type.replace(" ", "").lower() != held.segment.content_type.replace(" ", "").lower()
        ):
            raise Refused(f"Content-Type must be the announced {held.segment.content_type!r}")
        size = await put(held.key, chunks, held.segment.size)
        if size is None:
            raise UploadTooLarge(f"the upload is larger than the announced {held.segment.size} bytes")
        await self._put(event_id, candidate_id, replace(held, uploaded_type=content_type))
        return size

    # ------------------------------------------------------------------ complete

    async def complete(self, event_id: str, candidate_id: str, segment_id: str) -> dict[str, Any]:
        """Verify the upload and archive it. UnknownSegment, SegmentRejected."""
        held = await self._held(event_id, candidate_id, segment_id)
        if held is None:
            raise UnknownSegment(repr(segment_id))
        if held.state == "archived":
            return {"state": "archived", "key": held.key}
        if held.swept or self._links.clock() > held.expires + self._ttl / 2:
            problem: str | None = ABANDONED
        else:
            problem = await self._problem(event_id, candidate_id, held)
        if problem is not None:
            await self._links.archive.delete(held.key)
            await self._put(event_id, candidate_id, replace(held, state="rejected", reason=problem))
            raise SegmentRejected(problem)
        await self._put(event_id, candidate_id, replace(held, state="archived", reason=""))
        segment = held.segment
        signal = Signal(
            f"b:{segment_id}",
            segment.start,
            "backfilled",
            room_id=held.room_id,
            recording_id=segment_id,
            duration_s=round(segment.end - segment.start, 3),
            size=segment.size,
            path=held.key,
        )
        await self._links.add_signals(event_id, candidate_id, [signal])
        return {"state": "archived", "key": held.key}

    async def sweep(self, event_id: str, candidate_id: str, now: float) -> float | None:
        """Delete the objects of segments not archived whose upload URL ran out a URL's lifetime
        ago; when to look again (None: no upload is waiting)."""
        later: list[float] = []
        for segment_id in await self._links.store.list_segments(event_id, candidate_id):
            held = await self._held(event_id, candidate_id, segment_id)  # read again: it may have moved on
            if held is None or held.state == "archived" or held.swept:
                continue
            due = held.expires + self._ttl
            if due > now:
                later.append(due)
                continue
            try:
                await self._links.archive.delete(held.key)
            except ArchiveError as exc:
                log.warning("could not delete the stray upload %s (%s); again later", held.key, exc)
                later.append(now + RETRY_SWEEP_S)
                continue
            state: SegmentState = "rejected" if held.state == "rejected" else "abandoned"
            swept = replace(held, state=state, reason=held.reason or ABANDONED, swept=True)
            await self._put(event_id, candidate_id, swept)
        return min(later, default=None)

    async def _problem(self, event_id: str, candidate_id: str, held: Held) -> str | None:
        request = await self._links.requests.request(event_id, candidate_id, held.segment.request_id)
        if request is None:
            return "its request is unknown"
        problem = window_problem(held.segment, request.start, request.end, self.limits)
        if problem is not None:
            return problem
        found = await self._links.archive.read_upload(held.key, held.segment.size)
        if found is None:
            return "nothing was uploaded"
        data, stored_type = found
        return upload_problem(held.segment, data, stored_type or held.uploaded_type, self.limits)

    async def overview(self, event_id: str, candidate_id: str) -> dict[str, Any]:
        """The candidate's requests and announced segments, for the timeline API."""
        requests, released = await self._links.requests.held(event_id, candidate_id)
        return {
            "requests": [
                {
                    "request_id": r.request_id,
                    "from": epoch_ms(r.start),
                    "to": epoch_ms(r.end),
                    "state": r.state,
                    "cause": r.cause,
                }
                for r in sorted(requests.values(), key=lambda r: (r.start, r.request_id))
            ],
            "released_until": epoch_ms(released),
            "segments": await self._segments(event_id, candidate_id),
        }

    async def _segments(self, event_id: str, candidate_id: str) -> list[dict[str, Any]]:
        raw = await self._links.store.list_segments(event_id, candidate_id)
        out = []
        for segment_id, value in raw.items():
            held = Held.load(value)
            out.append(
                {
                    "segment_id": segment_id,
                    "request_id": held.segment.request_id,
                    "seq": held.segment.seq,
                    "started_at": epoch_ms(held.segment.start),
                    "ended_at": epoch_ms(held.segment.end),
                    "state": held.state,
                    "reason": held.reason or None,
                    "key": held.key,
                }
            )
        return sorted(out, key=lambda s: (s["started_at"], s["segment_id"]))
