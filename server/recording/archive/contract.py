"""The archive of recordings: what every backend does, and the records it keeps.

Every recording is stored once under the layout the exam body prescribes (layout.py). Backends:
`S3Archive` (s3.py, S3_BUCKET set) and `LocalArchive` (local.py, the same layout under ARCHIVE_DIR);
factory.py picks one. Both are idempotent: a segment stored twice is copied once.

    ArchiveError        a copy, upload, download or manifest I/O failed; `key` and the cause (retry later)
     └── SourceRefused  the source is not one 100ms would send (admission.py): never retried
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, Protocol


class ArchiveError(Exception):
    """Storing or reading `key` failed; the message says why. The caller retries later."""

    def __init__(self, key: str, cause: str) -> None:
        super().__init__(f"archive {key}: {cause}")
        self.key = key
        self.cause = cause


class SourceRefused(ArchiveError):
    """The recording's source is refused: `reason` is a metric label (not_allowed, private_address,
    redirect, too_large), the message says why. Reading it again would be refused again."""

    REASONS = ("not_allowed", "private_address", "redirect", "too_large")

    def __init__(self, key: str, reason: str, cause: str) -> None:
        super().__init__(key, f"source refused ({reason}): {cause}")
        self.reason = reason


@dataclass(frozen=True)
class SegmentSource:
    """One finished recording as 100ms (or the simulator) announced it, with the candidate it belongs to."""

    event_id: str
    candidate_id: str
    room_id: str
    session_id: str
    peer_id: str
    recording_id: str
    kind: str  # "stream" (per-peer stream recording)
    source_path: str  # "s3://bucket/key" or "file:///abs/path"
    presigned_url: str | None
    started_at: float  # epoch s
    ended_at: float
    duration_s: float
    size: int

    @property
    def identity(self) -> str:
        """What makes two announcements the same recording (a retried webhook, a replay)."""
        return self.recording_id or self.source_path


@dataclass(frozen=True)
class Segment:
    """A recording as archived: where it is (`key`) and what it covers."""

    key: str
    event_id: str
    candidate_id: str
    room_id: str
    session_id: str
    peer_id: str
    recording_id: str
    kind: str
    started_at: float  # epoch s
    ended_at: float
    duration_s: float
    size: int

    @classmethod
    def of(cls, source: SegmentSource, key: str, size: int) -> Segment:
        fields = {k: v for k, v in asdict(source).items() if k in cls.__dataclass_fields__}
        return cls(**{**fields, "key": key, "size": size})

    def to_dict(self) -> dict[str, Any]:
        """The wire and manifest shape: times in epoch milliseconds."""
        data = asdict(self)
        data["started_at"] = round(self.started_at * 1000)
        data["ended_at"] = round(self.ended_at * 1000)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Segment:
        """The inverse of `to_dict`; ValueError names the first bad field."""
        if not isinstance(data, dict):
            raise ValueError("segment must be an object")
        values: dict[str, Any] = {}
        for name, kind in (("started_at", float), ("ended_at", float), ("duration_s", float), ("size", int)):
            value = data.get(name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"segment {name} must be a number")
            values[name] = kind(value)
        values["started_at"] /= 1000
        values["ended_at"] /= 1000
        for name in cls.__dataclass_fields__:
            if name not in values:
                if not isinstance(data.get(name), str):
                    raise ValueError(f"segment {name} must be a string")
                values[name] = data[name]
        return cls(**values)


class Archive(Protocol):
    async def store_segment(self, source: SegmentSource) -> Segment:
        """Copy the recording into the layout (once: storing it again is a no-op); ArchiveError on failure."""
        ...

    async def write_manifest(self, event_id: str, candidate_id: str, manifest: dict[str, Any]) -> str:
        """Replace the candidate's manifest atomically; returns its key."""
        ...

    async def read_manifest(self, event_id: str, candidate_id: str) -> dict[str, Any] | None: ...

    async def url(self, key: str, *, expires_s: int = 3600) -> str:
        """A URL that downloads `key` for `expires_s`: presigned (S3) or a signed app URL (local)."""
        ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


@contextlib.contextmanager
def failures_of(key: str, doing: str) -> Iterator[None]:
    """Any error of the block as ArchiveError(key, "<doing>: <error>") (boto3, HTTP and OS errors)."""
    try:
        yield
    except ArchiveError:
        raise
    except Exception as exc:
        raise ArchiveError(key, f"{doing}: {type(exc).__name__}: {exc}") from exc
