"""The load tester's backfill parts that decide: which simulated segments a page holds and sends
(load_tests/backfill/local_copy.py), and how the verdict counts lost and recovered time
(load_tests/judge/backfill.py). Generated cases; no hub."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from load_tests.backfill import local_copy
from load_tests.backfill.local_copy import Piece
from load_tests.judge import backfill
from server.recording.monitor import intervals as iv

SEG = 1000

# back-to-back gaps and lengths (ms) -> sorted, disjoint, non-empty recorded spans
gaps_and_lengths = st.lists(st.tuples(st.integers(1, 5000), st.integers(1, 5000)), min_size=1, max_size=6)


def spans_of(parts: list[tuple[int, int]], base: int = 1_000_000) -> list[tuple[int, int]]:
    out, at = [], base
    for gap, length in parts:
        at += gap
        out.append((at, at + length))
        at += length
    return out


@given(gaps_and_lengths, st.integers(1, 4000))
def test_closed_spans_are_tiled_by_complete_segments_no_longer_than_the_segment(
    parts: list[tuple[int, int]], segment_ms: int
) -> None:
    spans = spans_of(parts)
    held = local_copy.pieces(list(spans), segment_ms, now_ms=spans[-1][1] + 1)
    assert [p.seq for p in held] == list(range(len(held)))
    assert all(p.complete and 0 < p.end_ms - p.start_ms <= segment_ms for p in held)
    assert iv.normalize((p.start_ms, p.end_ms) for p in held) == iv.normalize(spans)
    for a, b in itertools.pairwise(held):
        assert a.end_ms <= b.start_ms  # in order, never overlapping


@given(gaps_and_lengths, st.integers(0, 20_000), st.integers(0, 20_000))
def test_a_segment_once_cut_never_changes_as_recording_goes_on(
    parts: list[tuple[int, int]], early: int, later: int
) -> None:
    spans = spans_of(parts)
    recording = [*spans[:-1], (spans[-1][0], None)]  # the last span still being recorded
    first = spans[-1][0]
    now1, now2 = first + min(early, later), first + max(early, later)
    before = local_copy.pieces(recording, SEG, now1)
    after = local_copy.pieces(recording, SEG, now2)
    assert {p for p in before if p.complete} <= set(after)
    assert [(p.seq, p.start_ms) for p in before] == [(p.seq, p.start_ms) for p in after[: len(before)]]
    in_progress = [p for p in after if not p.complete]
    assert len(in_progress) <= 1 and all(p.end_ms == now2 for p in in_progress)


@given(
    gaps_and_lengths,
    st.lists(st.tuples(st.integers(0, 30_000), st.integers(1, 10_000)), max_size=4),
    st.data(),
)
def test_work_sends_each_complete_overlapping_segment_not_yet_archived_and_waits_for_the_rest(
    parts: list[tuple[int, int]], windows: list[tuple[int, int]], data: st.DataObject
) -> None:
    spans = spans_of(parts)
    base = spans[0][0]
    recording = [*spans[:-1], (spans[-1][0], None)]
    now = data.draw(st.integers(spans[-1][0], spans[-1][0] + 10_000))
    held = local_copy.pieces(recording, SEG, now)
    requests = {f"bf-{i}": (base + s, base + s + n) for i, (s, n) in enumerate(windows)}
    wanted = {(rid, p.seq) for rid, w in requests.items() for p in held if local_copy.overlaps(p, w)}
    done = set(data.draw(st.lists(st.sampled_from(sorted(wanted)), unique=True))) if wanted else set()
    plan = local_copy.work(held, requests, done)
    sent = {(rid, p.seq) for rid, p in plan.send}
    complete = {p.seq for p in held if p.complete}
    assert sent == {(rid, seq) for rid, seq in wanted - done if seq in complete}
    assert len(sent) == len(plan.send)
    assert [p.start_ms for _, p in plan.send] == sorted(p.start_ms for _, p in plan.send)
    waiting = [
        p.end_ms for p in held if not p.complete and any((r, p.seq) in wanted - done for r in requests)
    ]
    assert plan.wait_until_ms == (min(waiting) if waiting else None)


def test_a_page_may_close_only_when_all_it_holds_is_released_and_no_request_is_open() -> None:
    held = [Piece(0, 0, 1000), Piece(1, 1000, 1500)]
    assert not local_copy.released_all(held, {}, None)
    assert not local_copy.released_all(held, {}, 1499)
    assert local_copy.released_all(held, {}, 1500)
    assert not local_copy.released_all(held, {"bf-0": (0, 10)}, 5000)
    assert not local_copy.released_all([Piece(0, 0, 900, complete=False)], {}, 5000)
    assert local_copy.released_all([], {}, None)


# ---------------------------------------------------------------- the verdict's arithmetic

spans_s = st.lists(st.tuples(st.integers(0, 1000), st.integers(1, 200)), max_size=5).map(
    lambda xs: iv.normalize((float(s), float(s + n)) for s, n in xs)
)


@given(spans_s, spans_s, spans_s, spans_s, st.floats(0.1, 20), st.floats(0, 2))
def test_loss_is_bounded_by_the_sitting_and_recovery_by_the_loss(
    recorded: iv.Intervals,
    pending: iv.Intervals,
    held: iv.Intervals,
    backfilled: iv.Intervals,
    min_s: float,
    slack_s: float,
) -> None:
    sitting = ((0.0, 1200.0),)
    x = backfill.loss(sitting, held, recorded, pending, backfilled, min_s=min_s, slack_s=slack_s)
    uncovered = iv.subtract(iv.subtract(sitting, recorded), pending)
    assert 0 <= x.lost_s <= iv.total(uncovered, until=1200) + 1e-9
    assert 0 <= x.recovered_s <= x.lost_s + 1e-9
    long = sum(e - s for s, e in uncovered if e is not None and e - s >= min_s)
    assert abs(x.lost_s + x.no_copy_s - long) < 1e-6  # every long uncovered second: copied or not
    everything = backfill.loss(sitting, held, recorded, pending, held, min_s=min_s, slack_s=0)
    assert abs(everything.recovered_s - everything.lost_s) < 1e-6  # upload all held: all back


def test_short_holes_are_not_lost_and_seams_under_the_slack_are_recovered() -> None:
    sitting = ((0.0, 100.0),)
    recorded = ((2.0, 40.0), (43.0, 100.0))  # 2 s at the start and 3 s in the middle: under min_s
    x = backfill.loss(sitting, sitting, recorded, (), (), min_s=5, slack_s=1)
    assert (x.lost_s, x.recovered_s) == (0, 0)
    recorded = ((0.0, 40.0), (60.0, 100.0))  # 20 s lost; segments leave 0.5 s unsent at its end
    x = backfill.loss(sitting, sitting, recorded, (), ((30.0, 59.5),), min_s=5, slack_s=1)
    assert (x.lost_s, x.recovered_s) == (20.0, 20.0)
    x = backfill.loss(sitting, sitting, recorded, (), ((30.0, 55.0),), min_s=5, slack_s=1)
    assert (x.lost_s, x.recovered_s) == (20.0, 15.0)
    camera_off = ((0.0, 45.0), (50.0, 100.0))
    x = backfill.loss(sitting, camera_off, recorded, (), camera_off, min_s=5, slack_s=1)
    assert (x.lost_s, x.recovered_s, x.no_copy_s) == (15.0, 15.0, 5.0)


def _timeline(recorded: list[list[int]], backfilled: list[list[int]], pending: bool = False) -> dict:
    recordings = [{"status": "pending", "started_at": 50_000, "ended_at": 60_000}] if pending else []
    return {"intervals": {"recorded": recorded, "backfilled": backfilled}, "recordings": recordings}


def test_figures_count_stayed_online_candidates_apart_from_churned_ones() -> None:
    page = {"sitting": [[0.0, 100.0]], "held": [[0.0, 100.0]], "finished_at": 100.0}
    pages = {"a": {**page, "churned": False}, "b": {**page, "churned": True}, "c": {**page, "churned": False}}
    timelines = {
        "a": _timeline([[0, 40_000]], [[40_000, 100_000]]),  # 60 s lost, all back
        "b": _timeline([[0, 80_000]], []),  # 20 s lost, none back (churned: apart)
        "c": _timeline([[0, 100_000]], []),  # nothing lost
    }
    segments = [
        {
            "candidate_id": "a",
            "ready_at": 101.0,
            "archived_at": 103.0,
            "start_ms": 40_000,
            "end_ms": 70_000,
            "put_bytes": 300,
        },
        {
            "candidate_id": "a",
            "ready_at": 101.0,
            "archived_at": 104.0,
            "start_ms": 70_000,
            "end_ms": 100_000,
            "put_bytes": 300,
        },
    ]
    f = backfill.figures(pages, timelines, segments, min_s=5, slack_s=1, exam_end=100.0)
    assert f["backfill_coverage"] == 1.0 and f["backfill_coverage_churned"] == 0.0
    assert (f["backfill_lost_s"], f["backfill_recovered_s"]) == (80.0, 60.0)
    assert (f["backfill_delay_p50_s"], f["backfill_delay_max_s"]) == (2.5, 3.0)
    assert f["backfill_bytes_per_candidate_hour"] == round(600 / (60 / 3600))
    assert (f["backfill_after_finish_max_s"], f["backfill_done_after_exam_s"]) == (4.0, 4.0)
    assert [s["candidate_id"] for s in f["backfill_short"]] == ["b"]


def test_nothing_lost_gives_no_coverage_and_undecided_time_is_not_lost() -> None:
    page = {"sitting": [[0.0, 100.0]], "held": [[0.0, 100.0]], "churned": False, "finished_at": 100.0}
    timeline = _timeline([[0, 50_000], [60_000, 100_000]], [], pending=True)
    f = backfill.figures({"a": page}, {"a": timeline}, [], min_s=5, slack_s=1, exam_end=100.0)
    assert f["backfill_coverage"] is None and f["backfill_undecided_s"] == 10.0
    assert f["backfill_lost_s"] == 0.0 and f["backfill_delay_max_s"] is None
