"""What the hub accepts from a page's backfill (extension E15): announcements and uploads. Pure.

An announcement names one segment of the page's own recording: the request it answers, its number,
its wall-clock start and end (epoch ms), its size, sha256 and content type. The upload is judged
against it: size at most the announced, the same sha256, a WebM container whose blocks last about
`end - start`. Every refusal is a sentence the page can show or log.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any

from server.recording.backfill.webm import NotWebm, read

CONTENT_TYPE = re.compile(r"video/webm(\s*;\s*codecs=(\"[A-Za-z0-9.,_ -]{1,100}\"|[A-Za-z0-9.,_-]{1,100}))?")
SHA256 = re.compile(r"[0-9a-f]{64}")
REQUEST_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
FIELDS = ("request_id", "seq", "start", "end", "size", "sha256", "content_type")
MAX_MS = 253402300799000  # 9999-12-31


class Refused(ValueError):
    """A field or an upload the hub will not take; the message says why."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int = 64 * 1024 * 1024
    segment_max_s: float = 60.0
    """The longest segment; also how far a segment may reach outside its request's window."""
    tolerance_s: float = 2.0
    """How far the container's duration may differ from `end - start` (plus 10 % of it)."""


@dataclass(frozen=True, slots=True)
class Announcement:
    request_id: str
    seq: int
    start: float
    """Epoch seconds."""
    end: float
    size: int
    sha256: str
    content_type: str

    @property
    def segment_id(self) -> str:
        """The same segment (request and bytes) announced again gets the same id."""
        return hashlib.sha256(f"{self.request_id}\n{self.sha256}".encode()).hexdigest()[:32]


def _int(body: dict[str, Any], name: str, low: int, high: int) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Refused(f"{name} must be an integer")
    if not low <= value <= high:
        raise Refused(f"{name} must be between {low} and {high}")
    return value


def announcement(body: object, limits: Limits) -> Announcement:
    """The announcement in `body`, or Refused naming the first bad field."""
    if not isinstance(body, dict):
        raise Refused("the body must be a JSON object")
    unknown = sorted(k for k in body if k not in FIELDS)
    if unknown:
        raise Refused(f"{unknown[0]}: unknown field")
    request_id, sha, ctype = body.get("request_id"), body.get("sha256"), body.get("content_type")
    if not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id):
        raise Refused("request_id must be 1-64 letters, digits, '.', '_' or '-'")
    seq = _int(body, "seq", 0, 10_000_000)
    start = _int(body, "start", 0, MAX_MS)
    end = _int(body, "end", 0, MAX_MS)
    if end <= start:
        raise Refused("end must be after start")
    if (end - start) / 1000 > limits.segment_max_s:
        raise Refused(f"a segment may last at most {limits.segment_max_s:g} s")
    size = _int(body, "size", 1, limits.max_bytes)
    if not isinstance(sha, str) or not SHA256.fullmatch(sha):
        raise Refused("sha256 must be 64 lowercase hex digits")
    if not isinstance(ctype, str) or not CONTENT_TYPE.fullmatch(ctype):
        raise Refused("content_type must be video/webm, optionally with ;codecs=...")
    return Announcement(request_id, seq, start / 1000, end / 1000, size, sha, ctype)


def window_problem(segment: Announcement, start: float, end: float, limits: Limits) -> str | None:
    """Why the segment's times do not fit its request's window [start, end) widened by one
    segment length, or None."""
    slack = limits.segment_max_s
    if segment.start < start - slack or segment.end > end + slack:
        return "the segment's times lie outside its request's window"
    if segment.end <= start or segment.start >= end:
        return "the segment does not overlap its request's window"
    return None


def same_type(announced: str, stored: str | None) -> bool:
    """Does the uploaded object's type match the announced one (parameters may be spaced otherwise)?"""
    if stored is None:
        return False

    def norm(value: str) -> str:
        return value.replace(" ", "").lower()

    return norm(announced) == norm(stored)


def upload_problem(segment: Announcement, data: bytes, stored_type: str | None, limits: Limits) -> str | None:
    """Why the uploaded bytes are not the announced segment, or None when they are."""
    if not data:
        return "nothing was uploaded"
    if len(data) > segment.size:
        return f"{len(data)} bytes uploaded, {segment.size} announced"
    if hashlib.sha256(data).hexdigest() != segment.sha256:
        return "the sha256 of the upload is not the announced one"
    if not same_type(segment.content_type, stored_type):
        return f"content type {stored_type!r} is not the announced {segment.content_type!r}"
    try:
        info = read(data)
    except NotWebm as exc:
        return f"not a WebM segment: {exc}"
    wall = segment.end - segment.start
    tolerance = limits.tolerance_s + 0.1 * wall
    if not math.isfinite(info.duration_s) or abs(info.duration_s - wall) > tolerance:
        return f"the segment plays {info.duration_s:.1f} s, its times say {wall:.1f} s"
    return None
