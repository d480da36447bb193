"""The WebM reader (pure) against the test writer, as MediaRecorder writes them and with sizes."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from load_tests.backfill.webm_writer import webm
from server.recording.backfill.webm import NotWebm, read


@given(
    st.integers(1, 1200), st.sampled_from([5.0, 10.0, 30.0]), st.booleans(), st.sampled_from([0.5, 2.0, 5.0])
)
def test_the_duration_comes_from_the_blocks(tenths: int, fps: float, unknown: bool, cluster_s: float) -> None:
    duration = tenths / 10
    info = read(webm(duration, fps=fps, unknown_sizes=unknown, cluster_s=cluster_s))
    assert info.duration_s == pytest.approx(duration, abs=0.001)
    assert info.tracks and info.blocks >= 2


def test_what_is_not_webm_is_refused_with_the_reason() -> None:
    with pytest.raises(NotWebm, match="EBML"):
        read(b"RIFF....AVI ")
    with pytest.raises(NotWebm, match="matroska"):
        read(webm(3, doc_type="matroska"))
    with pytest.raises(NotWebm):
        read(webm(3)[:40])


@given(st.binary(max_size=300))
def test_any_bytes_are_read_or_refused_never_crash(data: bytes) -> None:
    with contextlib.suppress(NotWebm):
        read(b"\x1a\x45\xdf\xa3" + data)


@given(st.integers(50, 4000))
def test_a_cut_file_is_refused_or_shorter(cut: int) -> None:
    whole = webm(10, unknown_sizes=True)
    try:
        info = read(whole[:cut])
    except NotWebm:
        return
    assert info.duration_s <= 10.0
