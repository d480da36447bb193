"""Browser backfill's requests and segments in memory."""

from __future__ import annotations

from collections import defaultdict

from server.store.memory.kept import kept


class MemoryBackfill:
    def __init__(self) -> None:
        self._requests: dict[tuple[str, str], dict[str, bytes]] = defaultdict(dict)
        self._segments: dict[tuple[str, str], dict[str, bytes]] = defaultdict(dict)

    async def get_requests(self, event_id: str, candidate_id: str) -> dict[str, bytes]:
        return dict(self._requests.get((event_id, candidate_id), {}))

    async def put_requests(self, event_id: str, candidate_id: str, requests: dict[str, bytes]) -> None:
        if requests:
            self._requests[(event_id, candidate_id)].update((k, kept(v)) for k, v in requests.items())

    async def get_segment(self, event_id: str, candidate_id: str, segment_id: str) -> bytes | None:
        return self._segments.get((event_id, candidate_id), {}).get(segment_id)

    async def list_segments(self, event_id: str, candidate_id: str) -> dict[str, bytes]:
        return dict(self._segments.get((event_id, candidate_id), {}))

    async def put_segment(self, event_id: str, candidate_id: str, segment_id: str, segment: bytes) -> None:
        self._segments[(event_id, candidate_id)][segment_id] = kept(segment)
