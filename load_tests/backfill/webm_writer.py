"""A tiny WebM writer: just enough Matroska for a segment the hub can time (tests, load tests).

Frames are opaque bytes (not decodable video): the hub reads a segment's structure and block times,
never its pictures. `unknown_sizes` writes Segment and Cluster with unknown sizes and no Duration,
as MediaRecorder does.
"""

from __future__ import annotations

import struct


def _size(n: int) -> bytes:
    for length in range(1, 9):
        if n < (1 << (7 * length)) - 1:
            return (
                ((1 << (7 * length)) | n).to_bytes(length, "big")
                if length < 8
                else b"\x01" + n.to_bytes(7, "big")
            )
    raise ValueError("element too large")


UNKNOWN = b"\x01\xff\xff\xff\xff\xff\xff\xff"


def element(element_id: int, payload: bytes) -> bytes:
    head = element_id.to_bytes((element_id.bit_length() + 7) // 8, "big")
    return head + _size(len(payload)) + payload


def _uint(element_id: int, value: int) -> bytes:
    return element(element_id, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def webm(
    duration_s: float,
    *,
    fps: float = 10.0,
    frame: bytes = b"\x00" * 64,
    cluster_s: float = 5.0,
    unknown_sizes: bool = True,
    doc_type: str = "webm",
) -> bytes:
    """A WebM file whose blocks span `duration_s` (first block at 0, last at `duration_s`)."""
    header = element(
        0x1A45DFA3,
        _uint(0x4286, 1)
        + _uint(0x42F7, 1)
        + _uint(0x42F2, 4)
        + _uint(0x42F3, 8)
        + element(0x4282, doc_type.encode())
        + _uint(0x4287, 4)
        + _uint(0x4285, 2),
    )
    info = (
        _uint(0x2AD7B1, 1_000_000) + element(0x4D80, b"proctorhub-test") + element(0x5741, b"proctorhub-test")
    )
    if not unknown_sizes:
        info += element(0x4489, struct.pack(">d", duration_s * 1000))
    video = _uint(0xB0, 2) + _uint(0xBA, 2)
    track = (
        _uint(0xD7, 1) + _uint(0x73C5, 1) + _uint(0x83, 1) + element(0x86, b"V_VP8") + element(0xE0, video)
    )
    body = element(0x1549A966, info) + element(0x1654AE6B, element(0xAE, track))
    times = [round(i * 1000 / fps) for i in range(int(duration_s * fps) + 1)]
    if times[-1] != round(duration_s * 1000):
        times.append(round(duration_s * 1000))
    cluster_ms = max(1, round(cluster_s * 1000))
    clusters: dict[int, list[int]] = {}
    for t in times:
        clusters.setdefault(t // cluster_ms * cluster_ms, []).append(t)
    for start, members in sorted(clusters.items()):
        blocks = b"".join(
            element(
                0xA3, b"\x81" + struct.pack(">h", t - start) + (b"\x80" if t == start else b"\x00") + frame
            )
            for t in members
        )
        inner = _uint(0xE7, start) + blocks
        body += (b"\x1f\x43\xb6\x75" + UNKNOWN + inner) if unknown_sizes else element(0x1F43B675, inner)
    segment = (b"\x18\x53\x80\x67" + UNKNOWN + body) if unknown_sizes else element(0x18538067, body)
    return header + segment
