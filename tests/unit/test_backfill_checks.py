"""What the hub takes from a page's backfill (pure): announcements, windows, uploads."""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from load_tests.backfill.webm_writer import webm
from server.recording.backfill.checks import Limits, Refused, announcement, upload_problem, window_problem

LIMITS = Limits(max_bytes=1_000_000, segment_max_s=60, tolerance_s=2)
DATA = webm(30)


def body(**changes: Any) -> dict[str, Any]:
    base = {
        "request_id": "bf-1000",
        "seq": 3,
        "start": 1_000_000,
        "end": 1_030_000,
        "size": len(DATA),
        "sha256": hashlib.sha256(DATA).hexdigest(),
        "content_type": "video/webm;codecs=vp8,opus",
    }
    return {**base, **changes}


def test_a_good_announcement_is_read_in_seconds_and_names_its_segment() -> None:
    seen = announcement(body(), LIMITS)
    assert (seen.start, seen.end, seen.seq) == (1000.0, 1030.0, 3)
    assert seen.segment_id == announcement(body(seq=9), LIMITS).segment_id  # same request, same bytes
    assert seen.segment_id != announcement(body(request_id="bf-2"), LIMITS).segment_id


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"size": 2_000_000}, "size"),
        ({"size": True}, "size"),
        ({"end": 999_000}, "end must be after start"),
        ({"end": 1_090_000}, "at most 60 s"),
        ({"sha256": "A" * 64}, "sha256"),
        ({"content_type": "video/mp4"}, "content_type"),
        ({"content_type": "video/webm;codecs=<script>"}, "content_type"),
        ({"request_id": "../x"}, "request_id"),
        ({"extra": 1}, "extra: unknown field"),
        ({"seq": -1}, "seq"),
    ],
)
def test_a_bad_field_is_refused_with_its_name(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(Refused, match=reason):
        announcement(body(**changes), LIMITS)


@given(
    st.dictionaries(
        st.sampled_from(["request_id", "seq", "start", "end", "size", "sha256", "content_type", "x"]),
        st.one_of(st.none(), st.integers(), st.text(max_size=5), st.booleans()),
    )
)
def test_any_body_is_taken_or_refused_never_crashes(raw: dict[str, Any]) -> None:
    with contextlib.suppress(Refused):
        announcement(raw, LIMITS)


def test_a_segment_may_reach_one_segment_length_outside_its_window() -> None:
    seen = announcement(body(), LIMITS)
    assert window_problem(seen, 1010, 1100, LIMITS) is None
    assert window_problem(seen, 1200, 1300, LIMITS) is not None
    assert "overlap" in (window_problem(seen, 1030, 1080, LIMITS) or "")


def test_an_upload_is_judged_by_size_checksum_type_and_duration() -> None:
    seen = announcement(body(), LIMITS)
    assert upload_problem(seen, DATA, "video/webm; codecs=vp8,opus", LIMITS) is None
    assert "sha256" in (upload_problem(seen, DATA[:-1] + b"\x01", "video/webm;codecs=vp8,opus", LIMITS) or "")
    assert "announced" in (upload_problem(seen, DATA + b"x", "video/webm;codecs=vp8,opus", LIMITS) or "")
    assert "content type" in (upload_problem(seen, DATA, "video/mp4", LIMITS) or "")
    short = webm(10)
    short_seen = announcement(body(size=len(short), sha256=hashlib.sha256(short).hexdigest()), LIMITS)
    assert "plays 10.0 s" in (upload_problem(short_seen, short, "video/webm;codecs=vp8,opus", LIMITS) or "")
    text = b"not a video at all"
    text_seen = announcement(body(size=len(text), sha256=hashlib.sha256(text).hexdigest()), LIMITS)
    assert "not a WebM" in (upload_problem(text_seen, text, "video/webm;codecs=vp8,opus", LIMITS) or "")
