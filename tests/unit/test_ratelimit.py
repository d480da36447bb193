"""`TokenBucket` with a fake `now`: burst, refusal, refill, cap."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.hubs.ratelimit import TokenBucket

T0 = 1_000.0


def take(bucket: TokenBucket, n: int, now: float) -> int:
    return sum(bucket.allow(now) for _ in range(n))


def test_burst_then_refusal() -> None:
    bucket = TokenBucket(rate_per_s=2, burst=5, now=T0)
    assert [bucket.allow(T0) for _ in range(7)] == [True] * 5 + [False] * 2


def test_refill_over_time() -> None:
    bucket = TokenBucket(rate_per_s=2, burst=5, now=T0)
    assert take(bucket, 5, T0) == 5
    assert not bucket.allow(T0 + 0.4)  # 0.8 of a token
    assert bucket.allow(T0 + 0.5)  # 1.0
    assert not bucket.allow(T0 + 0.5)
    assert take(bucket, 3, T0 + 1.5) == 2


def test_never_more_than_burst_after_a_long_idle() -> None:
    bucket = TokenBucket(rate_per_s=10, burst=3, now=T0)
    assert take(bucket, 10, T0 + 3600) == 3
    assert take(bucket, 10, T0 + 7200) == 3


def test_clock_going_backwards_adds_nothing() -> None:
    bucket = TokenBucket(rate_per_s=1, burst=2, now=T0)
    assert take(bucket, 2, T0) == 2
    assert not bucket.allow(T0 - 100)
    assert not bucket.allow(T0 - 99.5)
    assert bucket.allow(T0 - 98.9)  # time since the last call counts again


def test_refused_calls_do_not_spend_tokens() -> None:
    bucket = TokenBucket(rate_per_s=1, burst=1, now=T0)
    assert bucket.allow(T0)
    assert take(bucket, 100, T0 + 0.5) == 0
    assert bucket.allow(T0 + 1)


@pytest.mark.parametrize(("rate", "seconds", "expected"), [(20, 1.0, 20), (0.5, 4.0, 2), (100, 0.05, 5)])
def test_steady_rate(rate: float, seconds: float, expected: int) -> None:
    bucket = TokenBucket(rate_per_s=rate, burst=1, now=T0)
    assert bucket.allow(T0)
    assert take(bucket, 10 * expected, T0 + seconds + 1e-9) == 1
    allowed = 0
    steps = 1000
    for i in range(1, steps + 1):
        allowed += bucket.allow(T0 + seconds * (1 + i / steps))
    assert allowed in (expected - 1, expected)


@settings(max_examples=300, deadline=None)
@given(
    rate=st.floats(min_value=0.1, max_value=1000),
    burst=st.integers(min_value=1, max_value=50),
    steps=st.lists(
        st.tuples(st.floats(min_value=0, max_value=2), st.integers(min_value=0, max_value=60)), max_size=40
    ),
)
def test_never_allows_more_than_burst_plus_refill(
    rate: float, burst: int, steps: list[tuple[float, int]]
) -> None:
    bucket = TokenBucket(rate_per_s=rate, burst=burst, now=T0)
    now = T0
    allowed = 0
    for gap, attempts in steps:
        now += gap
        granted = take(bucket, attempts, now)
        assert granted <= burst
        allowed += granted
        assert allowed <= burst + rate * (now - T0) + 1e-6
