"""Per-connection token bucket (pure: the caller passes `now`)."""

from __future__ import annotations


class TokenBucket:
    __slots__ = ("_burst", "_last", "_rate", "_tokens")

    def __init__(self, rate_per_s: float, burst: int, now: float) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = now

    def allow(self, now: float) -> bool:
        """Take one token; False when the client has sent faster than allowed."""
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
