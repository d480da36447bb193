"""A simulated candidate page's local copy and its uploads (extension E15, docs/candidate-backfill.md).

What it holds is local_copy.py's (pure): its camera from the moment the page opens until after it
left 100ms at the finish, also while its network is gone, never while its camera is off, cut into
segments of `SEGMENT_S`. The bytes are made only when a segment is sent: a small WebM file
(webm_writer) whose blocks last the segment, with the candidate and the segment's start in its
frames, so no two segments have the same sha256.

For each open request (the latest `backfill.request` of an id, less cancels) it uploads every held
segment that overlaps it, oldest first, one at a time, as the page does: announce, PUT the bytes to
the URL with exactly the headers the hub answers (relative to the hub, or absolute: a bucket), then
complete. `200 archived` at any step: done. `409 request_closed`: the request is dropped, nothing to
do. `422 segment_rejected` or a refused PUT: announced again. 401: a new session token. 503, other
5xx, no answer: again after a backoff (1 s doubling to 30 s, full jitter). Another 4xx: that segment
is given up for that request (counted as an error).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from load_tests.backfill import local_copy
from load_tests.backfill.local_copy import Piece, Span, Window
from load_tests.backfill.webm_writer import webm
from load_tests.users.http_lite import HttpError, HttpPool

SEGMENT_S = 30.0
FPS = 2.0  # frames per second of the generated WebM: enough blocks for the hub's duration check
CONTENT_TYPE = "video/webm;codecs=vp8"
BACKOFF_S = (1.0, 30.0)
TRIES = 8  # announce rounds per segment before it is given up (503s and refusals alike)


def ms(at: float) -> int:
    return int(at * 1000)


class PageCopy:
    """One candidate's recording and uploads. `shared` is the worker's sim_user.Shared."""

    def __init__(
        self,
        shared: Any,
        user_id: str,
        token: Callable[[], Awaitable[str]],
        renew: Callable[[], None],
        on_settled: Callable[[], None],
        offline_until: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.shared = shared
        self.user_id = user_id
        self._token = token
        self._renew = renew
        self._on_settled = on_settled
        self._offline_until = offline_until
        self.segment_ms = ms(SEGMENT_S)
        self.spans: list[list[int | None]] = []
        self.requests: dict[str, Window] = {}
        self.done: set[tuple[str, int]] = set()
        self.asked_at: dict[int, float] = {}  # segment -> when a request first wanted it
        self.released: int | None = None
        self.closed = False  # no more recording (finished)
        self.sending = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._base = f"/api/v1/events/{shared.event_id}/candidates/{user_id}/backfill"

    # ---------------------------------------------------------------- recording

    def record(self, at: float) -> None:
        """The camera records from `at` (the page opened, or the camera came back)."""
        if not self.closed and (not self.spans or self.spans[-1][1] is not None):
            self.spans.append([ms(at), None])

    def pause(self, at: float) -> None:
        """The camera stopped (or the page finished): the current segment ends here."""
        if self.spans and self.spans[-1][1] is None:
            self.spans[-1][1] = max(ms(at), int(self.spans[-1][0] or 0))

    def finish(self, at: float) -> None:
        self.pause(at)
        self.closed = True
        self._wake.set()

    def held(self, now: float | None = None) -> list[Piece]:
        spans: list[Span] = [(int(s or 0), e) for s, e in self.spans]
        return local_copy.pieces(spans, self.segment_ms, ms(time.time() if now is None else now))

    def held_spans(self) -> list[tuple[float, float]]:
        now = time.time()
        return [(s / 1000, (e if e is not None else ms(now)) / 1000) for s, e in self.spans if s is not None]

    # ---------------------------------------------------------------- the hub's messages

    def on_request(self, data: dict[str, Any]) -> None:
        rid, start, end = data.get("request_id"), data.get("from"), data.get("to")
        if not isinstance(rid, str) or not isinstance(start, int) or not isinstance(end, int):
            self.shared.records.error("backfill.request: malformed")
            return
        self.requests[rid] = (start, end)
        now = time.time()
        for piece in self.held(now):
            if local_copy.overlaps(piece, (start, end)):
                self.asked_at.setdefault(piece.seq, now)
        self.shared.records.counts["backfill_requests"] += 1
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._wake.set()

    def on_cancel(self, data: dict[str, Any]) -> None:
        self.requests.pop(str(data.get("request_id")), None)
        self._wake.set()
        self._check_settled()

    def on_release(self, data: dict[str, Any]) -> None:
        until = data.get("until")
        if isinstance(until, int) and (self.released is None or until > self.released):
            self.released = until
        self._check_settled()

    # ---------------------------------------------------------------- state

    @property
    def pending(self) -> bool:
        """Work is left: a segment being sent, or one an open request wants (sent or being recorded)."""
        if self.sending:
            return True
        if not self.requests:
            return False
        plan = local_copy.work(self.held(), self.requests, self.done)
        return bool(plan.send) or plan.wait_until_ms is not None

    @property
    def settled(self) -> bool:
        """Finished, and the hub released everything held with no request open: the page may close."""
        return (
            self.closed
            and not self.sending
            and local_copy.released_all(self.held(), self.requests, self.released)
        )

    def _check_settled(self) -> None:
        if self.settled:
            self._on_settled()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    # ---------------------------------------------------------------- uploads

    async def _run(self) -> None:
        while True:
            now = time.time()
            away = self._offline_until() - now
            if away > 0:  # no network: nothing leaves the page until it is back
                await asyncio.sleep(away)
                continue
            plan = local_copy.work(self.held(now), self.requests, self.done)
            if plan.send:
                rid, piece = plan.send[0]
                self.sending = True
                try:
                    await self._send(rid, piece)
                finally:
                    self.sending = False
                continue
            self._check_settled()
            self._wake.clear()
            timeout = (
                None if plan.wait_until_ms is None else max(0.05, plan.wait_until_ms / 1000 - now + 0.05)
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _wanted(self, rid: str, piece: Piece) -> bool:
        window = self.requests.get(rid)
        return window is not None and local_copy.overlaps(piece, window)

    def _bytes(self, piece: Piece) -> bytes:
        frame = f"{self.user_id}:{piece.start_ms}:".encode().ljust(64, b".")[:64]
        return webm((piece.end_ms - piece.start_ms) / 1000, fps=FPS, frame=frame)

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {await self._token()}"}
        try:
            answer: tuple[int, Any] = await self.shared.hub.request(method, path, body, headers)
            return answer
        except HttpError as exc:
            self.shared.records.error(f"backfill: {exc}")
            return 0, str(exc)

    async def _put(self, upload: dict[str, Any], data: bytes) -> int:
        url = str(upload.get("url", ""))
        headers = {str(k): str(v) for k, v in (upload.get("headers") or {}).items()}
        pool, path = self._pool_for(url)
        try:
            status, _ = await pool.request(
                str(upload.get("method", "PUT")), path, None, headers, content=data
            )
        except HttpError as exc:
            self.shared.records.error(f"backfill put: {exc}")
            return 0
        self.shared.records.counts["backfill_put_bytes"] += len(data)
        return status

    def _pool_for(self, url: str) -> tuple[HttpPool, str]:
        """The hub's pool for a URL relative to it (or on it); a pool of the bucket's origin else."""
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        if not parts.netloc:
            return self.shared.hub, path
        origin = f"{parts.scheme}://{parts.netloc}"
        return self.shared.pool(origin), path

    async def _backoff(self, attempt: int) -> None:
        low, cap = BACKOFF_S
        await asyncio.sleep(self.shared.rng.uniform(0.0, min(cap, low * 2**attempt)))

    async def _send(self, rid: str, piece: Piece) -> None:
        counts = self.shared.records.counts
        data = self._bytes(piece)
        body = {
            "request_id": rid,
            "seq": piece.seq,
            "start": piece.start_ms,
            "end": piece.end_ms,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "content_type": CONTENT_TYPE,
        }
        put_bytes = 0
        for attempt in range(TRIES):
            if not self._wanted(rid, piece):
                return  # cancelled meanwhile: nothing to do
            counts["backfill_announces"] += 1
            status, answer = await self._call("POST", self._base, body)
            if status == 200 and isinstance(answer, dict) and answer.get("state") == "archived":
                return self._archived(rid, piece, put_bytes)
            if status == 200 and isinstance(answer, dict) and isinstance(answer.get("upload"), dict):
                put = await self._put(answer["upload"], data)
                put_bytes += len(data)
                if 200 <= put < 300:
                    status, answer = await self._call("POST", f"{self._base}/{answer['segment_id']}/complete")
                    if status == 200:
                        return self._archived(rid, piece, put_bytes)
                    counts[f"backfill_complete_{status}"] += 1
                else:
                    counts[f"backfill_put_{put}"] += 1
                if status in (404, 422) or 400 <= put < 500:
                    continue  # refused or unknown: announce again (a fresh URL)
            elif status == 409:
                counts["backfill_request_closed"] += 1
                self.requests.pop(rid, None)  # cancelled or satisfied: nothing to do
                return
            elif status == 401:
                self._renew()
            elif status != 0 and status < 500:
                counts[f"backfill_refused_{status}"] += 1
                self.shared.records.error(f"backfill announce {status}: {str(answer)[:100]}")
                self.done.add((rid, piece.seq))  # given up for this request
                return
            else:
                counts[f"backfill_retry_{status}"] += 1
            await self._backoff(attempt)
        self.shared.records.error("backfill: a segment was given up after its tries")
        self.done.add((rid, piece.seq))

    def _archived(self, rid: str, piece: Piece, put_bytes: int) -> None:
        now = time.time()
        self.done.add((rid, piece.seq))
        asked = self.asked_at.get(piece.seq, now)
        self.shared.records.backfill.append(
            {
                "candidate_id": self.user_id,
                "request_id": rid,
                "seq": piece.seq,
                "start_ms": piece.start_ms,
                "end_ms": piece.end_ms,
                "put_bytes": put_bytes,
                "ready_at": max(asked, piece.end_ms / 1000),
                "archived_at": now,
            }
        )
