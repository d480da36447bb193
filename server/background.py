"""Log a failing dependency once when it starts failing, then at most every `every_s`, and once when it
recovers: thousands of webhooks a second must not mean thousands of log lines while Redis is down.
Loops that retry wait with `pause` (exponential backoff, reset by `recovered`)."""

from __future__ import annotations

import asyncio
import logging
import time

BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 5.0


class Outage:
    def __init__(self, log: logging.Logger, what: str, *, every_s: float = 30.0) -> None:
        self._log = log
        self._what = what
        self._every_s = every_s
        self._since: float | None = None
        self._logged_at = 0.0
        self._count = 0
        self._backoff = BACKOFF_MIN_S

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._count += 1
        if self._since is None:
            self._since = self._logged_at = now
            self._log.warning("%s failed: %r", self._what, exc)
        elif now - self._logged_at >= self._every_s:
            self._logged_at = now
            self._log.warning("%s still failing (%d failures): %r", self._what, self._count, exc)

    async def pause(self, exc: BaseException) -> None:
        """`failed`, then wait before the caller tries again (longer each time, up to BACKOFF_MAX_S)."""
        self.failed(exc)
        await asyncio.sleep(self._backoff)
        self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)

    def recovered(self) -> None:
        self._backoff = BACKOFF_MIN_S
        if self._since is not None:
            self._log.warning(
                "%s works again after %.1fs (%d failures)",
                self._what,
                time.monotonic() - self._since,
                self._count,
            )
            self._since = None
            self._count = 0
