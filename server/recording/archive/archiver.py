"""Keep each candidate's archive folder current: recordings copied into the layout, and its manifest.

The monitor calls `changed(event, candidate, timeline)` when a recording arrived or an alert
changed. Work is per candidate, coalesced (a change while a write runs asks for one more write),
and retried with backoff when the store of recordings fails, so a slow bucket never holds up
alerts. A candidate's first change waits `settle_s` (its exam's end brings a leave, a recording, a
session close and an alert within a second: one write, not four), and at most `concurrency`
candidates are written at once: the copies and manifests run in threads, and thousands of them at
the end of an exam took the event loop's time (and the GIL) from the alerts. The manifest is rebuilt
whole from the timeline each time: no read-modify-write, so two nodes writing it converge on the
same content.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from server.recording.archive.contract import Archive, ArchiveError, Segment, SegmentSource, SourceRefused
from server.recording.monitor.intervals import epoch_ms
from server.recording.monitor.report import flag_json, gap_json
from server.recording.monitor.timeline import PeerRecording, Signal, Timeline
from server.store.presence import PresenceStore

log = logging.getLogger("proctorhub.recording.archiver")

RETRY_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
SETTLE_S = 1.0
CONCURRENCY = 2
REFUSED_REMEMBERED = 10_000


def segment_source(event_id: str, candidate_id: str, peer: PeerRecording) -> SegmentSource | None:
    signal = peer.signal
    if peer.status != "recorded" or signal is None or peer.start is None or peer.end is None:
        return None
    if not signal.path and not signal.url:
        return None
    return SegmentSource(
        event_id=event_id,
        candidate_id=candidate_id,
        room_id=peer.room_id,
        session_id=peer.session_id,
        peer_id=peer.peer_id,
        recording_id=signal.recording_id,
        kind="stream",
        source_path=signal.path,
        presigned_url=signal.url or None,
        started_at=peer.start,
        ended_at=peer.end,
        duration_s=signal.duration_s,
        size=signal.size,
    )


def backfill_segment(event_id: str, candidate_id: str, signal: Signal) -> Segment:
    """A segment the candidate's page uploaded (extension E15), as the manifest lists it."""
    return Segment(
        key=signal.path,
        event_id=event_id,
        candidate_id=candidate_id,
        room_id=signal.room_id,
        session_id="",
        peer_id="",
        recording_id=signal.recording_id,
        kind="backfill",
        started_at=signal.at,
        ended_at=signal.at + signal.duration_s,
        duration_s=signal.duration_s,
        size=signal.size,
    )


def refused_json(source: SegmentSource, exc: SourceRefused) -> dict[str, Any]:
    """A refused recording as the manifest lists it: which one, and why it was not archived."""
    return {
        "peer_id": source.peer_id,
        "room_id": source.room_id,
        "session_id": source.session_id,
        "recording_id": source.recording_id,
        "reason": exc.reason,
        "error": exc.cause,
    }


def manifest(
    event_id: str,
    candidate_id: str,
    name: str | None,
    timeline: Timeline,
    segments: list[Segment],
    flags: list[dict[str, Any]],
    now: float,
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "candidate_id": candidate_id,
        "name": name,
        "updated_at": epoch_ms(now),
        "segments": [s.to_dict() for s in sorted(segments, key=lambda s: (s.started_at, s.key))],
        "gaps": [gap_json(candidate_id, g) for g in timeline.gaps],
        "flags": flags,
        "failed": [
            {
                "peer_id": p.peer_id,
                "room_id": p.room_id,
                "session_id": p.session_id,
                "at": epoch_ms(p.end),
                "error": p.signal.error if p.signal else "",
            }
            for p in timeline.peers
            if p.status == "failed"
        ],
        "missing": [
            {
                "peer_id": p.peer_id,
                "room_id": p.room_id,
                "session_id": p.session_id,
                "due_at": epoch_ms(p.due_at),
            }
            for p in timeline.peers
            if p.status == "missing"
        ],
    }


class Archiver:
    def __init__(
        self,
        archive: Archive,
        users: PresenceStore,
        timeline_of: Callable[[str, str], Awaitable[Timeline]],
        clock: Callable[[], float],
        on_refused: Callable[[str], None] | None = None,
        *,
        settle_s: float = SETTLE_S,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self._archive = archive
        self._settle_s = settle_s
        self._slots = asyncio.Semaphore(concurrency)
        self._on_refused = on_refused
        self._refused_seen: set[str] = set()
        self.refusals = 0
        self._users = users
        self._timeline_of = timeline_of
        self._clock = clock
        self._dirty: set[tuple[str, str]] = set()
        self._running: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.failures = 0

    def changed(self, event_id: str, candidate_id: str, timeline: Timeline | None = None) -> None:
        key = (event_id, candidate_id)
        self._dirty.add(key)
        if key not in self._running:
            task = asyncio.get_running_loop().create_task(self._drain(key), name=f"archive-{candidate_id}")
            self._running[key] = task

    async def _drain(self, key: tuple[str, str]) -> None:
        try:
            attempt = 0
            await asyncio.sleep(self._settle_s)
            while key in self._dirty:
                self._dirty.discard(key)
                try:
                    async with self._slots:
                        await self.write(*key)
                    attempt = 0
                except (ArchiveError, OSError) as exc:
                    self.failures += 1
                    delay = RETRY_S[min(attempt, len(RETRY_S) - 1)]
                    log.warning("archiving %s failed (%s); again in %g s", key, exc, delay)
                    self._dirty.add(key)
                    attempt += 1
                    await asyncio.sleep(delay)
        finally:
            self._running.pop(key, None)

    async def write(self, event_id: str, candidate_id: str) -> str:
        """Copy the candidate's recordings into the layout and write its manifest; the manifest's key."""
        timeline = await self._timeline_of(event_id, candidate_id)
        sources = [s for s in (segment_source(event_id, candidate_id, p) for p in timeline.peers) if s]
        segments: list[Segment] = []
        refused: list[dict[str, Any]] = []
        for source in sources:
            try:
                segments.append(await self._archive.store_segment(source))
            except SourceRefused as exc:  # the same source would be refused again: flag it, go on
                self._refused(source, exc)
                refused.append(refused_json(source, exc))
        segments += [backfill_segment(event_id, candidate_id, s) for s in timeline.backfill_segments]
        user = await self._users.get_user(event_id, candidate_id)
        flags = [flag_json(f) for f in await self._users.list_flags(event_id, candidate_id)]
        body = manifest(
            event_id, candidate_id, user.name if user else None, timeline, segments, flags, self._clock()
        )
        body["refused"] = refused
        return await self._archive.write_manifest(event_id, candidate_id, body)

    def _refused(self, source: SegmentSource, exc: SourceRefused) -> None:
        """Log and count a refused source once per recording (each manifest write meets it again)."""
        if source.identity in self._refused_seen:
            return
        if len(self._refused_seen) >= REFUSED_REMEMBERED:
            self._refused_seen.clear()  # forged webhooks cannot grow it without bound
        self._refused_seen.add(source.identity)
        self.refusals += 1
        if self._on_refused is not None:
            self._on_refused(exc.reason)
        log.warning(
            "recording %s of %s/%s refused, not archived: %s",
            source.recording_id,
            source.event_id,
            source.candidate_id,
            exc.cause,
        )

    async def stop(self) -> None:
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)
