"""Time stamps as 100ms writes them (contract §2.2, §3.2).

Envelope `timestamp`: RFC 3339 with second precision. Times inside webhook `data` and in peer
lists: RFC 3339 with nanoseconds. Room objects: milliseconds. Unset times: Go's zero time.
All inputs are epoch seconds (floats) from the simulator's injectable clock.
"""

from __future__ import annotations

from datetime import UTC, datetime

GO_ZERO = "0001-01-01T00:00:00Z"


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(int(t // 1), UTC)


def seconds(t: float) -> str:
    """`2021-08-08T07:04:15Z`: the envelope's `timestamp`."""
    return _utc(t).strftime("%Y-%m-%dT%H:%M:%SZ")


def millis(t: float) -> str:
    """`2022-09-09T11:41:08.082Z`: room `created_at` / `updated_at`."""
    ms = min(999, int((t % 1) * 1000))
    return _utc(t).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms:03d}Z"


def nanos(t: float | None) -> str:
    """`2021-11-30T12:58:49.972912470Z`: times in webhook data; Go zero time for None."""
    if t is None:
        return GO_ZERO
    ns = min(999_999_999, int((t % 1) * 1e9))
    return _utc(t).strftime("%Y-%m-%dT%H:%M:%S") + f".{ns:09d}Z"


def yyyymmdd(t: float) -> str:
    """The `<start_date>` part of recording keys (contract §4.3)."""
    return _utc(t).strftime("%Y%m%d")


def parse(text: str) -> float:
    """An RFC 3339 time (as in `after=` / `before=` filters) as epoch seconds; ValueError if not one."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
