"""The timeline's pure core: intervals, gaps and recordings, from signals in any order."""

from __future__ import annotations

import itertools
import random

from hypothesis import given
from hypothesis import strategies as st

from server.recording.monitor import intervals as iv
from server.recording.monitor.timeline import (
    RECORDING_FAILED,
    RECORDING_MISSING,
    VIDEO_GAP,
    Rules,
    Signal,
    evaluate,
)
from tests.signal_stories import closed, failed, join, leave, media, offline, online, recorded

RULES = Rules(threshold_s=10, deadline_s=30)

# ---------------------------------------------------------------- intervals

spans = st.lists(
    st.tuples(st.integers(0, 50), st.one_of(st.none(), st.integers(0, 60))).map(
        lambda p: (float(p[0]), None if p[1] is None else float(p[1]))
    ),
    max_size=6,
)


def _covered(spans: iv.Intervals, at: float) -> bool:
    return iv.contains(spans, at)


@given(spans, spans)
def test_set_operations_agree_with_pointwise_logic(
    a_raw: list[iv.Interval], b_raw: list[iv.Interval]
) -> None:
    a, b = iv.normalize(a_raw), iv.normalize(b_raw)
    assert iv.normalize(a) == a
    for at in [x / 2 for x in range(0, 130)]:
        in_a, in_b = _covered(a, at), _covered(b, at)
        assert _covered(iv.union(a, b), at) == (in_a or in_b)
        assert _covered(iv.intersect(a, b), at) == (in_a and in_b)
        assert _covered(iv.subtract(a, b), at) == (in_a and not in_b)


@given(spans)
def test_normalized_spans_are_sorted_and_disjoint(raw: list[iv.Interval]) -> None:
    out = iv.normalize(raw)
    for (s1, e1), (s2, _) in itertools.pairwise(out):
        assert e1 is not None and s1 < e1 < s2


# ---------------------------------------------------------------- stories


def healthy() -> list[Signal]:
    return [online(0), media(1), join("p1", 1)]


def test_a_healthy_candidate_has_no_gap() -> None:
    t = evaluate(healthy(), 100, RULES)
    assert t.gaps == ()
    assert t.video == ((1, None),)
    assert t.video_state == "on" and t.recording_state == "on"


def test_camera_off_longer_than_the_threshold_is_a_gap_with_its_cause() -> None:
    signals = [*healthy(), media(20, video=False), media(35)]
    (gap,) = evaluate(signals, 100, RULES).gaps
    assert (gap.kind, gap.cause, gap.start, gap.end) == (VIDEO_GAP, "video_unpublished", 20, 35)


def test_a_short_blip_is_no_gap_but_asks_to_be_checked_when_it_would_become_one() -> None:
    signals = [*healthy(), media(20, video=False)]
    t = evaluate(signals, 25, RULES)
    assert t.gaps == () and t.next_check == 30
    assert evaluate(signals, 30, RULES).gaps[0].end is None
    assert evaluate([*signals, media(27)], 100, RULES).gaps == ()


def test_a_lost_socket_is_the_cause_even_when_the_camera_was_on() -> None:
    (gap,) = evaluate([*healthy(), offline(40), online(60)], 100, RULES).gaps
    assert (gap.cause, gap.start, gap.end) == ("socket_lost", 40, 60)


def test_leaving_the_room_is_the_cause_when_the_client_says_so() -> None:
    (gap,) = evaluate([*healthy(), media(40, joined=False), leave("p1", 41)], 100, RULES).gaps
    assert (gap.cause, gap.end) == ("peer_left", None)


def test_finishing_ends_the_sitting() -> None:
    signals = [*healthy(), Signal("finished", 50, "finished"), media(51, joined=False), leave("p1", 51)]
    t = evaluate(signals, 500, RULES)
    assert t.gaps == () and t.sitting == ((0, 50),)


def test_a_failed_recording_is_a_gap_at_once() -> None:
    (gap,) = evaluate([*healthy(), leave("p1", 50), failed("p1", 52)], 53, RULES).gaps
    assert (gap.kind, gap.cause, gap.start, gap.end) == (RECORDING_FAILED, "recording_failed", 1, 50)


def test_a_recording_is_missing_only_after_the_deadline_from_its_session_closing() -> None:
    signals = [*healthy(), Signal("finished", 50, "finished"), leave("p1", 50), closed(50)]
    pending = evaluate(signals, 79, RULES)
    assert pending.gaps == () and pending.next_check == 80
    (gap,) = evaluate(signals, 80, RULES).gaps
    assert (gap.kind, gap.peer_id) == (RECORDING_MISSING, "p1")
    assert evaluate([*signals, recorded("p1", 85, 49)], 90, RULES).gaps == ()


def test_a_peer_without_video_owes_no_recording() -> None:
    signals = [online(0), join("p9", 1), leave("p9", 5), closed(6), media(7), join("p1", 7, "s2")]
    assert not [g for g in evaluate(signals, 100, RULES).gaps if g.kind == RECORDING_MISSING]


def test_recorded_coverage_counts_segments_within_the_sitting() -> None:
    signals = [*healthy(), leave("p1", 50), recorded("p1", 55, 49), Signal("finished", 60, "finished")]
    expected, got = evaluate(signals, 100, RULES).coverage(100)
    assert (expected, got) == (60, 49)


# ---------------------------------------------------------------- any order, any duplicates

times = st.integers(0, 120).map(float)


@st.composite
def stories(draw: st.DrawFn) -> list[Signal]:
    out: list[Signal] = [online(draw(times))]
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["online", "offline", "media", "peer", "finished", "closed"]))
        at = draw(times)
        if kind == "online":
            out.append(online(at))
        elif kind == "offline":
            out.append(offline(at))
        elif kind == "media":
            out.append(media(at, joined=draw(st.booleans()), video=draw(st.booleans())))
        elif kind == "finished":
            out.append(Signal("finished", at, "finished"))
        elif kind == "closed":
            out.append(closed(at, draw(st.sampled_from(["s1", "s2"]))))
        else:
            peer = draw(st.sampled_from(["a", "b", "c"]))
            session = draw(st.sampled_from(["s1", "s2"]))
            out.append(join(peer, at, session))
            if draw(st.booleans()):
                out.append(leave(peer, at + draw(times), session))
            outcome = draw(st.sampled_from(["none", "recorded", "failed"]))
            if outcome == "recorded":
                out.append(recorded(peer, at + draw(times), draw(times)))
            elif outcome == "failed":
                out.append(failed(peer, at + draw(times)))
    return out


@given(stories(), st.randoms(use_true_random=False), times)
def test_the_same_signals_in_any_order_with_duplicates_give_the_same_timeline(
    signals: list[Signal], rnd: random.Random, extra: float
) -> None:
    now = 150 + extra
    reference = evaluate(signals, now, RULES)
    shuffled = signals + rnd.sample(signals, k=len(signals) // 2)
    rnd.shuffle(shuffled)
    assert evaluate(shuffled, now, RULES) == reference


@given(stories(), times)
def test_gaps_lie_within_the_sitting_and_video_gaps_are_longer_than_the_threshold(
    signals: list[Signal], extra: float
) -> None:
    now = 150 + extra
    t = evaluate(signals, now, RULES)
    for gap in t.gaps:
        if gap.kind == VIDEO_GAP:
            assert iv.contains(t.sitting, gap.start)
            assert (now if gap.end is None else gap.end) - gap.start >= RULES.threshold_s
    expected, got = t.coverage(now)
    assert 0 <= got <= expected + 1e-9


@given(stories(), times)
def test_signals_round_trip_through_their_stored_form(signals: list[Signal], extra: float) -> None:
    again = [Signal.from_dict(s.to_dict()) for s in signals]
    assert evaluate(again, 150 + extra, RULES) == evaluate(signals, 150 + extra, RULES)
