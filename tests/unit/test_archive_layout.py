"""The archive's pure parts: the key layout, segment (de)serialisation, and URL signatures."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.config import ConfigError, load_settings
from server.recording.archive.contract import Segment, SegmentSource
from server.recording.archive.layout import (
    MAX_PART_CHARS,
    alternate_key,
    content_type,
    extension,
    manifest_key,
    safe_part,
    segment_key,
    stamp,
)
from server.recording.archive.local import key_is_safe, sign, signature_problem
from tests.archive_support import SECRET, STARTED, source

ids = st.text(min_size=1, max_size=60)
times = st.floats(min_value=0, max_value=4_102_444_800)  # 1970 .. 2100
paths = st.sampled_from(
    ["s3://b/100ms/r/20240610/s/p/x.mp4", "file:///tmp/a/x.webm", "s3://b/k", "s3://b/k.MP4?x=1", "s3://b/.."]
)
prefixes = st.sampled_from(["", "proctorhub", "a/b", "/x//y/"])
sources = st.builds(
    source,
    event_id=ids,
    candidate_id=ids,
    room_id=ids,
    kind=st.sampled_from(["stream", "screen", "a_b", "..", "é/x"]),
    recording_id=st.text(max_size=30),
    source_path=paths,
    started_at=times,
)


def decode(part: str) -> str:
    """The inverse of safe_part (below its length limit)."""
    raw = bytearray()
    i = 0
    while i < len(part):
        if part[i] == "~":
            raw.append(int(part[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.extend(part[i].encode())
            i += 1
    return raw.decode("utf-8", "surrogatepass")


def test_the_prescribed_layout() -> None:
    key = segment_key("proctorhub", source())
    assert key == "proctorhub/exam-1/cand-1/20240610T061320Z_665f1b2c3d4e5f6a7b8c9d0e_stream.mp4"
    assert manifest_key("proctorhub", "exam-1", "cand-1") == "proctorhub/exam-1/cand-1/manifest.json"
    assert manifest_key("", "e", "c") == "e/c/manifest.json"
    alternate = alternate_key("proctorhub", source())
    assert re.fullmatch(re.escape(key[: -len(".mp4")]) + r"_[0-9a-f]{16}\.mp4", alternate)


def test_odd_ids_are_made_safe() -> None:
    assert safe_part("cand 7/../x") == "cand~207~2F.~2E~2Fx"
    assert safe_part("..") == "~2E~2E" and safe_part(".a.") == "~2Ea~2E" and safe_part("a..b") == "a.~2Eb"
    assert safe_part("") == "~"
    assert safe_part("Zoë") == "Zo~C3~AB"
    assert safe_part("a_b", underscore=False) == "a~5Fb"
    long = safe_part("x" * 1000)
    assert len(long) <= MAX_PART_CHARS and long != safe_part("x" * 999)


def test_stamps_extensions_and_content_types() -> None:
    assert stamp(0) == "19700101T000000Z" and stamp(STARTED) == "20240610T061320Z"
    for bad in (-1.0, float("nan"), float("inf"), 1e13):
        with pytest.raises(ValueError):
            stamp(bad)
    assert extension("s3://b/a/x.MP4") == "mp4" and extension("https://h/x.webm?sig=a.b") == "webm"
    assert extension("s3://b/a/noext") == "bin" and extension("s3://b/a.b/c") == "bin"
    assert content_type("k/x.mp4") == "video/mp4" and content_type("k/m.json") == "application/json"
    assert content_type("k/x.webm") == "video/webm" and content_type("k/x.bin") == "application/octet-stream"


@given(sources, prefixes)
def test_keys_are_pure_and_safe(src: SegmentSource, prefix: str) -> None:
    key, again = segment_key(prefix, src), segment_key(prefix, replace(src))
    assert key == again
    for k in (key, alternate_key(prefix, src)):
        assert ".." not in k and not k.startswith("/") and "\\" not in k and "//" not in k
        assert key_is_safe(k)
        assert len(k.encode()) <= 1024


@given(ids)
def test_safe_part_is_reversible(value: str) -> None:
    part = safe_part(value)
    assert re.fullmatch(r"[A-Za-z0-9_.~-]+", part) and ".." not in part
    assert not part.startswith(".") and not part.endswith(".")
    if len(part) < MAX_PART_CHARS:
        assert decode(part) == value


def layout(s: SegmentSource) -> tuple[str, ...]:
    """What the prescribed key is made of."""
    return (s.event_id, s.candidate_id, stamp(s.started_at), s.room_id, s.kind, extension(s.source_path))


@given(sources, sources)
def test_distinct_sources_get_distinct_keys(a: SegmentSource, b: SegmentSource) -> None:
    if layout(a) != layout(b):
        assert segment_key("p", a) != segment_key("p", b)
    if a.identity != b.identity or layout(a) != layout(b):
        assert alternate_key("p", a) != alternate_key("p", b)


def test_segments_round_trip_with_times_in_ms() -> None:
    segment = Segment.of(source(), "k/x.mp4", 42)
    data = segment.to_dict()
    assert data["started_at"] == 1_718_000_000_250 and data["ended_at"] == 1_718_000_185_250
    assert data["size"] == 42 and data["key"] == "k/x.mp4" and "source_path" not in data
    assert Segment.from_dict(data) == segment
    for broken in ({**data, "size": "42"}, {**data, "key": None}, {**data, "started_at": True}, [data]):
        with pytest.raises(ValueError):
            Segment.from_dict(broken)


def test_signatures() -> None:
    key, exp = "p/e/c/x.mp4", 2_000_000_000
    sig = sign(SECRET, key, exp)
    assert signature_problem(SECRET, key, str(exp), sig, now=exp - 1) is None
    assert signature_problem(SECRET, key, str(exp), sig, now=exp + 1) == "link expired"
    assert signature_problem(SECRET, key + "x", str(exp), sig, now=0) == "bad signature"
    assert signature_problem(SECRET, key, str(exp + 1), sig, now=0) == "bad signature"
    assert signature_problem("other" + SECRET, key, str(exp), sig, now=0) == "bad signature"
    for exp_raw, sig_raw in ((None, sig), (str(exp), None), ("-1", sig), ("1e9", sig), (str(exp), "é")):
        assert signature_problem(SECRET, key, exp_raw, sig_raw, now=0) is not None
    for bad in ("", "/a", "a/../b", "a//b", "./a", "a\\b", "a/\0", ".."):
        assert not key_is_safe(bad)


@given(sources, st.sampled_from(["event_id", "candidate_id", "room_id", "kind", "recording_id"]), ids, times)
def test_one_field_apart_is_a_different_place(a: SegmentSource, field: str, value: str, start: float) -> None:
    """Near neighbours: sources that differ in one field (or in the second they started)."""
    for b in (replace(a, **{field: value}), replace(a, started_at=start)):
        if b == a:
            continue
        if layout(b) != layout(a):
            assert segment_key("p", a) != segment_key("p", b)
        if b.identity != a.identity or layout(b) != layout(a):
            assert alternate_key("p", a) != alternate_key("p", b)
        else:  # the same recording announced twice: the same place
            assert (segment_key("p", a), alternate_key("p", a)) == (
                segment_key("p", b),
                alternate_key("p", b),
            )


def test_archive_settings() -> None:
    assert load_settings({"S3_PREFIX": "/exams//2024/"}).s3_prefix == "exams/2024"
    assert load_settings({}).archive_url_ttl_s == 3600
    for bad in ("a/../b", "./x", "a\\b"):
        with pytest.raises(ConfigError, match="S3_PREFIX"):
            load_settings({"S3_PREFIX": bad})
    with pytest.raises(ConfigError, match="ARCHIVE_URL_TTL_S"):
        load_settings({"ARCHIVE_URL_TTL_S": str(8 * 86_400)})
