"""Browser backfill's state (extension E15): per candidate, the requests sent to its page and the
segments it announced, each as opaque JSON under its id (the service owns the shapes)."""

from __future__ import annotations

from typing import Protocol


class BackfillStore(Protocol):
    async def get_requests(self, event_id: str, candidate_id: str) -> dict[str, bytes]:
        """Request id -> the request as last decided (the release point under `RELEASE_FIELD`)."""

    async def put_requests(self, event_id: str, candidate_id: str, requests: dict[str, bytes]) -> None:
        """Replace the named requests (others are kept)."""

    async def get_segment(self, event_id: str, candidate_id: str, segment_id: str) -> bytes | None: ...
    async def list_segments(self, event_id: str, candidate_id: str) -> dict[str, bytes]: ...
    async def put_segment(
        self, event_id: str, candidate_id: str, segment_id: str, segment: bytes
    ) -> None: ...


RELEASE_FIELD = "~release"
"""The field of `get_requests` that holds the release point last sent (not a request id: ids start `bf-`)."""

LOCAL_FIELD = "~local"
"""The field of `get_requests` that holds the oldest time the page last said it holds (epoch s)."""

SWEEP_FIELD = "~sweep"
"""The field of `get_requests` that holds when uploads not completed are next looked at (epoch s)."""
