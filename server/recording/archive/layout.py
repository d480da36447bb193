"""The archive's key layout (pure): where a recording and a manifest go.

{prefix}/{event_id}/{candidate_id}/{started_at}_{room_id}_{kind}.{ext}     started_at: YYYYMMDDTHHMMSSZ
{prefix}/{event_id}/{candidate_id}/manifest.json
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from typing import Any

import orjson

from server.recording.archive.contract import ArchiveError, SegmentSource

MANIFEST_NAME = "manifest.json"
MAX_PART_CHARS = 160  # one path segment of a key; S3 keys are at most 1024 bytes
LATEST_START_S = 253402300799.0  # 9999-12-31T23:59:59Z: the timestamp keeps its 16 characters

MEDIA_TYPES = {
    "mp4": "video/mp4",
    "m4a": "audio/mp4",
    "webm": "video/webm",
    "weba": "audio/webm",
    "json": "application/json",
}
"""What the archive serves inline (with nosniff): recordings and manifests. The extension comes from the
sender's `recording_path`, so anything else is `application/octet-stream`, an attachment under
`Content-Security-Policy: sandbox`: a `.html` "recording" never runs on the hub's (or bucket's) origin."""
DOWNLOAD_TYPE = "application/octet-stream"

_SAFE = re.compile(r"[A-Za-z0-9_.-]")
_EXT = re.compile(r"[a-z0-9]{1,8}")


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
    """The media type `key` is served with: one of MEDIA_TYPES, else DOWNLOAD_TYPE."""
    return MEDIA_TYPES.get(extension(key), DOWNLOAD_TYPE)


def served_inline(key: str) -> bool:
    """May a browser show `key` in place? Only the fixed MEDIA_TYPES; the rest is downloaded."""
    return extension(key) in MEDIA_TYPES


def serving_headers(key: str) -> dict[str, str]:
    """Headers for serving `key` from the hub: the media type, nosniff, and for anything but
    MEDIA_TYPES an attachment under a sandboxing CSP."""
    headers = {"Content-Type": content_type(key), "X-Content-Type-Options": "nosniff"}
    if not served_inline(key):
        name = key.rsplit("/", 1)[-1]
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
        headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return headers


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
