"""When to try a failed delivery again: exponential backoff within a retry window. Pure.

After the n-th failed attempt the next one waits `base_s * 2**(n-1)` (at most MAX_DELAY_S), plus up
to JITTER of that so that many deliveries failed together do not come back together. The window
runs `retry_for_s` from the creation (or the last manual retry); the last attempt falls at its end,
and a failure then gives up: the delivery goes to the dead-letter list.
"""

from __future__ import annotations

MAX_DELAY_S = 3600.0
JITTER = 0.1


def backoff_s(attempts: int, base_s: float, *, jitter: float = 0.0) -> float:
    """The wait after `attempts` failed attempts (>= 1); `jitter` in [0, 1) stretches it by up to JITTER."""
    exponent = min(max(attempts, 1) - 1, 64)  # 2**64 * any base is far past the cap
    return min(MAX_DELAY_S, base_s * 2.0**exponent) * (1.0 + JITTER * jitter)


def next_attempt(
    attempts: int, *, window_from: float, now: float, base_s: float, retry_for_s: float, jitter: float = 0.0
) -> float | None:
    """When to try again after `attempts` failures, the last of them at `now`; None: give up."""
    window_end = window_from + retry_for_s
    if now >= window_end:
        return None
    return min(now + backoff_s(attempts, base_s, jitter=jitter), window_end)
