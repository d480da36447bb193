"""The per-user media gate's pure core: changes only, a burst, then the latest state at each refill."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from server.hubs.media_gate import GateCore


def test_repeats_are_dropped_and_changes_pass_within_the_burst() -> None:
    gate: GateCore[str] = GateCore(burst=3, refill_s=10)
    assert gate.offer("c1", "on", 1, now=0) == "passed"
    assert gate.offer("c1", "on", 2, now=0) == "same"
    assert gate.offer("c1", "off", 3, now=0) == "passed"
    assert gate.offer("c1", "on", 4, now=0) == "passed"
    assert gate.offer("c2", "on", 5, now=0) == "passed"  # every key has its own bucket


def test_over_the_burst_only_the_latest_state_is_kept_and_passes_at_the_refill() -> None:
    gate: GateCore[str] = GateCore(burst=1, refill_s=10)
    assert gate.offer("c1", "on", "a", now=0) == "passed"
    assert gate.offer("c1", "off", "b", now=1) == "held"
    assert gate.offer("c1", "half", "c", now=2) == "held"
    assert gate.release("c1", now=5) is None  # no token yet
    assert gate.release("c1", now=11) == ("half", "c")
    assert gate.release("c1", now=30) is None  # nothing held any more
    assert gate.offer("c1", "half", "d", now=31) == "same"


def test_going_back_to_the_passed_state_while_held_leaves_nothing_to_tell() -> None:
    gate: GateCore[str] = GateCore(burst=1, refill_s=10)
    gate.offer("c1", "on", "a", now=0)
    assert gate.offer("c1", "off", "b", now=1) == "held"
    assert gate.offer("c1", "on", "c", now=2) == "same"
    assert not gate.holding("c1") and gate.release("c1", now=20) is None


@given(st.lists(st.tuples(st.floats(0, 5), st.booleans()), max_size=300))
def test_what_passes_is_bounded_and_the_last_state_is_never_lost(offers: list[tuple[float, bool]]) -> None:
    burst, refill = 5, 10.0
    gate: GateCore[str] = GateCore(burst=burst, refill_s=refill)
    now, passed, last = 0.0, 0, None
    for step, state in offers:
        now += step
        if gate.offer("c1", state, state, now) == "passed":
            passed += 1
        last = state
    assert passed <= burst + now / refill + 1
    released = gate.release("c1", now + refill)
    slot = gate.slot("c1")
    if last is not None:
        assert slot is not None and slot.state == last, (released, last)


def test_idle_keys_are_forgotten_once_their_bucket_is_full_again() -> None:
    gate: GateCore[str] = GateCore(burst=2, refill_s=10)
    gate.offer("idle", "on", 1, now=0)
    gate.offer("busy", "on", 1, now=0)
    gate.offer("busy", "off", 2, now=1)
    assert gate.offer("busy", "on", 3, now=2) == "held"
    assert gate.prune(now=19) == 0  # "idle" needs 2 x 10 s to be full again
    assert gate.prune(now=25) == 1 and gate.slot("idle") is None
    assert gate.slot("busy") is not None  # it holds a change: kept
    assert gate.offer("idle", "on", 4, now=26) == "passed"  # afresh
