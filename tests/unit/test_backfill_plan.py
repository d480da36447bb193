"""The backfill bookkeeping (pure): which time is asked for, what is satisfied, what may be deleted."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from server.recording.backfill.plan import Inputs, Request, Rules, holes, plan, uncovered
from server.recording.monitor import intervals as iv

RULES = Rules(min_s=5, slack_s=1, extend_s=30, release_step_s=10)

closed_spans = st.lists(
    st.tuples(st.integers(0, 200), st.integers(1, 60)).map(lambda p: (float(p[0]), float(p[0] + p[1]))),
    max_size=5,
).map(iv.normalize)


@st.composite
def inputs(draw: st.DrawFn) -> Inputs:
    start = float(draw(st.integers(0, 20)))
    finished = draw(st.one_of(st.none(), st.integers(30, 260)))
    sitting = iv.normalize([(start, None if finished is None else float(finished))])
    now = float(draw(st.integers(30, 300)))
    recorded = draw(closed_spans)
    pending = iv.subtract(draw(closed_spans), recorded)
    backfilled = draw(closed_spans)
    local_from = draw(st.one_of(st.none(), st.integers(0, 300).map(float)))
    return Inputs(sitting, recorded, pending, backfilled, now, local_from=local_from)


def _span_start(request: Request) -> float:
    """The start of the uncovered span a request is named after (`bf-{start ms}`)."""
    return int(request.request_id.removeprefix("bf-")) / 1000


def _at(points: float) -> list[float]:
    return [x / 4 for x in range(0, int(points * 4) + 1)]


@given(inputs())
def test_requests_ask_only_for_uncovered_time_and_never_overlap(given_inputs: Inputs) -> None:
    result = plan(given_inputs, {}, None, RULES)
    live = [r for r in result.requests.values() if r.state != "cancelled"]
    for request in live:
        assert request.end - _span_start(request) >= RULES.min_s
        assert request.start < request.end
        assert request.end <= given_inputs.now
        window = ((request.start, request.end),)
        assert not iv.intersect(window, given_inputs.recorded)
        assert not iv.intersect(window, given_inputs.pending)
        assert iv.subtract(window, given_inputs.sitting) == ()
    for a in live:
        for b in live:
            if a is not b:
                assert a.end <= b.start or b.end <= a.start


@given(inputs())
def test_a_request_is_satisfied_exactly_when_backfill_leaves_no_real_hole(given_inputs: Inputs) -> None:
    result = plan(given_inputs, {}, None, RULES)
    for request in result.requests.values():
        rest = holes(request.start, request.end, given_inputs.backfilled, RULES.slack_s)
        assert (request.state in ("open", "lost")) == bool(rest)
        if request.state == "satisfied":
            assert request not in result.send  # a fresh satisfied request is never sent at all


@given(inputs())
def test_planning_again_on_the_same_facts_sends_nothing(given_inputs: Inputs) -> None:
    first = plan(given_inputs, {}, None, RULES)
    again = plan(given_inputs, first.requests, first.released, RULES)
    assert again.send == ()
    assert again.release is None
    assert again.requests == first.requests


@given(inputs(), closed_spans)
def test_a_late_recording_cancels_what_it_covers(given_inputs: Inputs, late: iv.Intervals) -> None:
    first = plan(given_inputs, {}, None, RULES)
    later = replace(
        given_inputs,
        recorded=iv.union(given_inputs.recorded, late),
        pending=iv.subtract(given_inputs.pending, late),
    )
    second = plan(later, first.requests, first.released, RULES)
    sent = {r.request_id: r for r in second.send}
    for rid, held in first.requests.items():
        now_held = second.requests[rid]
        if held.state == "open" and now_held.state == "cancelled":
            assert sent[rid].state == "cancelled"  # every withdrawal is told to the page
        if now_held.state != "cancelled":
            assert not iv.intersect(((now_held.start, now_held.end),), later.recorded)


@given(inputs())
def test_released_time_is_decided(given_inputs: Inputs) -> None:
    """Before the release point every sitting moment is recorded, asked for, a short hole, or no
    longer held by the page."""
    result = plan(given_inputs, {}, None, RULES)
    assert result.release is not None and result.release <= given_inputs.now
    asked = iv.normalize((r.start, r.end) for r in result.requests.values() if r.state != "cancelled")
    short = iv.normalize(
        (s.start, s.end)
        for s in uncovered(given_inputs)
        if s.end is not None and s.end - s.start < RULES.min_s
    )
    gone = () if given_inputs.local_from is None else ((float("-inf"), given_inputs.local_from),)
    decided = iv.union(given_inputs.recorded, asked, short, gone)  # gone: the page no longer holds it
    for at in _at(result.release):
        if at < result.release and iv.contains(given_inputs.sitting, at):
            assert iv.contains(decided, at), at
    assert all(start >= result.release for start, _ in given_inputs.pending)


@given(inputs(), st.integers(0, 100))
def test_the_release_point_never_moves_back(given_inputs: Inputs, held: int) -> None:
    result = plan(given_inputs, {}, float(held), RULES)
    assert result.released is not None and result.released >= held
    if result.release is not None:
        assert result.release >= held + RULES.release_step_s


def test_a_span_still_going_on_is_extended_every_segment_length() -> None:
    base = Inputs(((0.0, None),), (), (), (), now=40.0)
    first = plan(base, {}, None, RULES)
    (request,) = first.send
    assert (request.request_id, request.start, request.end, request.ongoing) == ("bf-0", 0.0, 40.0, True)
    assert first.next_check == 70.0
    quiet = plan(Inputs(((0.0, None),), (), (), (), now=60.0), first.requests, first.released, RULES)
    assert quiet.send == ()
    grown = plan(Inputs(((0.0, None),), (), (), (), now=71.0), first.requests, first.released, RULES)
    assert [(r.request_id, r.end, r.state) for r in grown.send] == [("bf-0", 71.0, "open")]


def test_backfilled_segments_satisfy_a_request_and_the_page_is_told() -> None:
    facts = Inputs(((0.0, 100.0),), ((0.0, 20.0), (50.0, 100.0)), (), (), now=120.0)
    first = plan(facts, {}, None, RULES)
    assert [(r.request_id, r.start, r.end, r.state) for r in first.send] == [("bf-20000", 20.0, 50.0, "open")]
    segments = ((19.0, 34.9), (35.2, 51.0))  # a restart's 0.3 s between two segments is no hole
    done = plan(
        Inputs(facts.sitting, facts.recorded, (), segments, 120.0), first.requests, first.released, RULES
    )
    assert [(r.request_id, r.state) for r in done.send] == [("bf-20000", "satisfied")]


def test_a_stored_request_keeps_its_cause() -> None:
    facts = Inputs(((0.0, 100.0),), (), (), (), now=120.0, causes=((0.0, 100.0, "recording_failed"),))
    result = plan(facts, {}, None, RULES)
    assert result.requests["bf-0"] == Request("bf-0", 0.0, 100.0, "open", "recording_failed")


# ---------------------------------------------------------------- the page's own `local.from`


@given(inputs())
def test_no_request_asks_for_time_the_page_no_longer_holds(given_inputs: Inputs) -> None:
    result = plan(given_inputs, {}, None, RULES)
    held_from = given_inputs.local_from
    for request in result.requests.values():
        if request.state == "open" and held_from is not None:
            assert request.start >= held_from
        if request.state == "lost":
            assert held_from is not None and request.end <= held_from
            assert request.start == _span_start(request)  # the report keeps the whole span
            assert holes(request.start, request.end, given_inputs.backfilled, RULES.slack_s)
            assert request not in result.send  # never asked for


@given(inputs())
def test_the_page_is_asked_for_all_it_holds_of_the_uncovered_time(given_inputs: Inputs) -> None:
    """Trimming takes away only the time before `local.from`: the rest is asked for as before."""
    result = plan(given_inputs, {}, None, RULES)
    untrimmed = plan(replace(given_inputs, local_from=None), {}, None, RULES)
    held_from = given_inputs.local_from if given_inputs.local_from is not None else float("-inf")
    assert result.requests.keys() == untrimmed.requests.keys()
    for rid, whole in untrimmed.requests.items():
        request = result.requests[rid]
        assert (request.end, request.cause, request.ongoing) == (whole.end, whole.cause, whole.ongoing)
        if request.state != "lost" and whole.state != "satisfied":
            assert request.start == max(whole.start, held_from)


@given(inputs(), st.integers(0, 300))
def test_an_open_request_the_page_no_longer_holds_is_withdrawn(given_inputs: Inputs, held: int) -> None:
    first = plan(replace(given_inputs, local_from=None), {}, None, RULES)
    second = plan(replace(given_inputs, local_from=float(held)), first.requests, first.released, RULES)
    sent = {r.request_id: r for r in second.send}
    for rid, before in first.requests.items():
        after = second.requests[rid]
        if before.state == "open" and after.state == "lost":
            assert sent[rid] == after and sent[rid].state == "lost"  # a `backfill.cancel` to the page
        if before.state == "open" and after.state == "open" and after.start != before.start:
            assert sent[rid].start == held  # asked again from where the page's copy begins


def test_a_span_before_the_pages_copy_is_lost_with_its_cause_and_one_across_it_is_trimmed() -> None:
    causes = ((0.0, 30.0, "recording_failed"), (60.0, 100.0, "peer_left"))
    facts = Inputs(((0.0, 100.0),), ((30.0, 60.0),), (), (), now=120.0, causes=causes, local_from=80.0)
    result = plan(facts, {}, None, RULES)
    assert result.requests == {
        "bf-0": Request("bf-0", 0.0, 30.0, "lost", "recording_failed"),
        "bf-60000": Request("bf-60000", 80.0, 100.0, "open", "peer_left"),
    }
    assert result.send == (result.requests["bf-60000"],)
