"""The archive of recordings: the contract the monitor uses, and the pure key layout.

Every recording is stored once under the layout the exam body prescribes:

    {prefix}/{event_id}/{candidate_id}/{started_at}_{room_id}_{kind}.{ext}     started_at: YYYYMMDDTHHMMSSZ
    {prefix}/{event_id}/{candidate_id}/manifest.json

Backends: `S3Archive` (archive_s3.py, S3_BUCKET set) and `LocalArchive` (archive_local.py, the same
layout under ARCHIVE_DIR). Both are idempotent: a segment stored twice is copied once.

    ArchiveError        a copy, upload, download or manifest I/O failed; `key` and the cause (retry later)
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import mimetypes
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson

if TYPE_CHECKING:
    from server.config import Settings

MANIFEST_NAME = "manifest.json"
MAX_PART_CHARS = 160  # one path segment of a key; S3 keys are at most 1024 bytes
LATEST_START_S = 253402300799.0  # 9999-12-31T23:59:59Z: the timestamp keeps its 16 characters

CONTENT_TYPES = {
    "mp4": "video/mp4",
    "m4a": "audio/mp4",
    "webm": "video/webm",
    "json": "application/json",
    "zip": "application/zip",
    "m3u8": "application/vnd.apple.mpegurl",
}

_SAFE = re.compile(r"[A-Za-z0-9_.-]")
_EXT = re.compile(r"[a-z0-9]{1,8}")


class ArchiveError(Exception):
    """Storing or reading `key` failed; the message says why. The caller retries later."""

    def __init__(self, key: str, cause: str) -> None:
        super().__init__(f"archive {key}: {cause}")
        self.key = key
        self.cause = cause


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


# -- the layout (pure) ----------------------------------------------------------------------------


def safe_part(value: str, *, underscore: bool = True) -> str:
    """`value` as one key segment: A-Z a-z 0-9 - _ and lone inner dots kept, every other byte `~HH`.

    Injective (decode `~HH` to get `value` back) up to MAX_PART_CHARS; longer values keep a prefix and
    a digest of the whole. Never empty, never starts or ends with a dot, never contains `..`, `/` or
    `\\`. `underscore=False` escapes `_` too, for parts of a file name that `_` separates.
    """
    if not value:
        return "~"
    out: list[str] = []
    last = len(value) - 1
    for i, char in enumerate(value):
        if char == ".":
            kept = 0 < i < last and out[-1] != "."
        else:
            kept = bool(_SAFE.fullmatch(char)) and (underscore or char != "_")
        out.extend([char] if kept else [f"~{byte:02X}" for byte in char.encode("utf-8", "surrogatepass")])
    part = "".join(out)
    if len(part) > MAX_PART_CHARS:
        digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:24]
        part = f"{part[: MAX_PART_CHARS - 26].rstrip('.')}~~{digest}"
    return part


def normal_prefix(prefix: str) -> str:
    """S3_PREFIX without empty segments; ValueError for `.`/`..` segments or a backslash."""
    parts = [p for p in prefix.split("/") if p]
    if any(p in (".", "..") or "\\" in p for p in parts):
        raise ValueError(f"prefix {prefix!r} must not contain '.' or '..' segments or backslashes")
    return "/".join(parts)


def _join(prefix: str, *parts: str) -> str:
    return "/".join(p for p in (normal_prefix(prefix), *parts) if p)


def stamp(epoch_s: float) -> str:
    """`YYYYMMDDTHHMMSSZ` (UTC) of an epoch time; ValueError outside years 1970-9999."""
    if not math.isfinite(epoch_s) or not 0 <= epoch_s <= LATEST_START_S:
        raise ValueError(f"started_at {epoch_s!r} is not a time between 1970 and 9999")
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(math.floor(epoch_s)))


def extension(source_path: str) -> str:
    """The file extension of a source path or URL (lower case), `bin` when it has none."""
    name = source_path.split("?", 1)[0].split("#", 1)[0].rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[1].lower() if "." in name else ""
    return ext if _EXT.fullmatch(ext) else "bin"


def candidate_folder(prefix: str, event_id: str, candidate_id: str) -> str:
    return _join(prefix, safe_part(event_id), safe_part(candidate_id))


def manifest_key(prefix: str, event_id: str, candidate_id: str) -> str:
    return f"{candidate_folder(prefix, event_id, candidate_id)}/{MANIFEST_NAME}"


def segment_key(prefix: str, source: SegmentSource) -> str:
    """The prescribed key of a recording: a pure function of the source."""
    room, kind = safe_part(source.room_id, underscore=False), safe_part(source.kind, underscore=False)
    name = f"{stamp(source.started_at)}_{room}_{kind}.{extension(source.source_path)}"
    return f"{candidate_folder(prefix, source.event_id, source.candidate_id)}/{name}"


def alternate_key(prefix: str, source: SegmentSource) -> str:
    """Where a recording goes when another one already holds its prescribed key (same second, room
    and kind: a candidate who rejoined at once). Distinct recordings get distinct alternates."""
    primary = segment_key(prefix, source)
    stem, ext = primary.rsplit(".", 1)
    tag = hashlib.sha256(source.identity.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{stem}_{tag}.{ext}"


def content_type(key: str) -> str:
    ext = extension(key)
    return CONTENT_TYPES.get(ext) or mimetypes.types_map.get(f".{ext}", "application/octet-stream")


def dump_manifest(key: str, event_id: str, candidate_id: str, manifest: dict[str, Any]) -> bytes:
    """The manifest as stored: indented JSON with sorted keys, its ids those of its place."""
    body = {**manifest, "event_id": event_id, "candidate_id": candidate_id}
    try:
        return orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    except TypeError as exc:
        raise ArchiveError(key, f"the manifest is not JSON-serialisable: {exc}") from None


def parse_manifest(key: str, body: bytes) -> dict[str, Any]:
    try:
        manifest = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ArchiveError(key, f"the manifest is not JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise ArchiveError(key, "the manifest is not a JSON object")
    return manifest


def places(prefix: str, source: SegmentSource) -> tuple[str, str]:
    """The prescribed key and the alternate one; ArchiveError for a source that has no place."""
    try:
        return segment_key(prefix, source), alternate_key(prefix, source)
    except ValueError as exc:
        raise ArchiveError(source.source_path, str(exc)) from None


@contextlib.contextmanager
def failures_of(key: str, doing: str) -> Iterator[None]:
    """Any error of the block as ArchiveError(key, "<doing>: <error>") (boto3, HTTP and OS errors)."""
    try:
        yield
    except ArchiveError:
        raise
    except Exception as exc:
        raise ArchiveError(key, f"{doing}: {type(exc).__name__}: {exc}") from exc


def build_archive(settings: Settings) -> Archive:
    """S3 when S3_BUCKET is set, else the same layout under ARCHIVE_DIR."""
    if settings.s3_bucket:
        from server.recording.archive_s3 import S3Archive

        return S3Archive(settings)
    from server.recording.archive_local import LocalArchive

    return LocalArchive(settings)
