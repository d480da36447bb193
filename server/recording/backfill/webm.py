"""How long a WebM file plays, read from its EBML structure. Pure: bytes in, seconds out.

MediaRecorder's WebM (Chrome's, Firefox's) usually has no Duration element and often unknown-size
Segment and Cluster elements, so the duration comes from the blocks: each Cluster has a Timecode and
each SimpleBlock or Block a signed 16-bit timecode relative to it, all in TimecodeScale units
(nanoseconds per tick, 1,000,000 by default). The duration is last block time - first block time,
or the Duration element when present and larger. A small reader of our own instead of PyAV: it needs
no native library, reads only the few elements it needs, and never decodes a frame.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

EBML = 0x1A45DFA3
DOC_TYPE = 0x4282
SEGMENT = 0x18538067
INFO = 0x1549A966
TIMECODE_SCALE = 0x2AD7B1
DURATION = 0x4489
TRACKS = 0x1654AE6B
CLUSTER = 0x1F43B675
CLUSTER_TIMECODE = 0xE7
BLOCK_GROUP = 0xA0
BLOCK = 0xA1
SIMPLE_BLOCK = 0xA3

DESCEND = frozenset({EBML, SEGMENT, INFO, CLUSTER, BLOCK_GROUP})
"""Masters whose children we read; every other element is skipped by its size."""
UNKNOWN_OK = frozenset({SEGMENT, CLUSTER})
"""The only elements that may have an unknown size (live muxers write them so)."""


class NotWebm(ValueError):
    """The bytes are not a WebM file we can time; the message says why."""


@dataclass(frozen=True, slots=True)
class WebmInfo:
    duration_s: float
    blocks: int
    tracks: bool


def _vint(data: bytes, pos: int, *, keep_marker: bool) -> tuple[int, int, bool]:
    """(value, next position, all value bits set) of the variable-length integer at `pos`."""
    if pos >= len(data):
        raise NotWebm("truncated element header")
    first = data[pos]
    length = 1
    mask = 0x80
    while length <= 8 and not first & mask:
        mask >>= 1
        length += 1
    if length > 8:
        raise NotWebm("bad variable-length integer")
    if pos + length > len(data):
        raise NotWebm("truncated element header")
    value = first if keep_marker else first & (mask - 1)
    for byte in data[pos + 1 : pos + length]:
        value = (value << 8) | byte
    all_ones = not keep_marker and value == (1 << (7 * length)) - 1
    return value, pos + length, all_ones


def _uint(payload: bytes) -> int:
    return int.from_bytes(payload, "big") if payload else 0


def _float(payload: bytes) -> float:
    if len(payload) == 4:
        return float(struct.unpack(">f", payload)[0])
    if len(payload) == 8:
        return float(struct.unpack(">d", payload)[0])
    raise NotWebm("bad float element")


def read(data: bytes) -> WebmInfo:
    """The file's duration and block count; NotWebm when it is not a WebM file with blocks."""
    if len(data) < 4 or int.from_bytes(data[:4], "big") != EBML:
        raise NotWebm("no EBML header")
    pos, doc_type, scale = 0, "", 1_000_000
    duration_ticks: float | None = None
    cluster_time: int | None = None
    first: int | None = None
    last: int | None = None
    blocks, tracks = 0, False
    while pos < len(data):
        element, pos, _ = _vint(data, pos, keep_marker=True)
        size, pos, unknown = _vint(data, pos, keep_marker=False)
        if unknown and element not in UNKNOWN_OK:
            raise NotWebm(f"element 0x{element:X} has an unknown size")
        if element in DESCEND:
            if element == CLUSTER:
                cluster_time = None
            continue  # read its children in place
        end = len(data) if unknown else pos + size
        if end > len(data):
            if element in (SIMPLE_BLOCK, BLOCK) or blocks == 0:
                raise NotWebm("truncated element")
            break  # a cut-off tail after whole blocks: what came before still counts
        payload = data[pos:end]
        pos = end
        if element == DOC_TYPE:
            doc_type = payload.decode("ascii", "replace")
        elif element == TIMECODE_SCALE:
            scale = _uint(payload) or scale
        elif element == DURATION:
            duration_ticks = _float(payload)
        elif element == TRACKS:
            tracks = True
        elif element == CLUSTER_TIMECODE:
            cluster_time = _uint(payload)
        elif element in (SIMPLE_BLOCK, BLOCK):
            if cluster_time is None:
                raise NotWebm("a block before its cluster's timecode")
            _, at, _ = _vint(payload, 0, keep_marker=False)  # the track number
            if at + 2 > len(payload):
                raise NotWebm("truncated block")
            relative = struct.unpack(">h", payload[at : at + 2])[0]
            time = cluster_time + relative
            first = time if first is None else min(first, time)
            last = time if last is None else max(last, time)
            blocks += 1
    if doc_type != "webm":
        raise NotWebm(f"document type is {doc_type or 'missing'}, not webm")
    if first is None or last is None:
        raise NotWebm("no media blocks")
    ticks = float(last - first)
    if duration_ticks is not None:
        ticks = max(ticks, duration_ticks)
    return WebmInfo(ticks * scale / 1e9, blocks, tracks)
