"""Pure helpers: match recorded deliveries to the actions that caused them, and summarise."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Any

# One recorded `candidate.status`: (received at, candidate_id, presence, video, server ts in ms).
Record = tuple[float, str, str, str, int]
# One action of the driving candidate: (sent at, presence it causes or None, video it causes or None).
Action = tuple[float, str | None, str | None]


def _window_ends(actions: Sequence[Action]) -> list[float]:
    """Each action's deliveries must arrive before the next action expecting the same state."""
    ends: list[float] = []
    for i, (_, presence, video) in enumerate(actions):
        later = (a[0] for a in actions[i + 1 :] if (a[1], a[2]) == (presence, video))
        ends.append(next(later, math.inf))
    return ends


def match_deliveries(
    per_socket: Sequence[Sequence[Record]], candidate_id: str, actions: Sequence[Action]
) -> dict[str, Any]:
    """For each action, the latency of its first matching delivery on every socket.

    Returns `{"recv": [[s, ...] per action], "ts": [[s, ...] per action], "missing": [n per action]}`:
    `recv` is local receive time minus send time, `ts` the server's `ts` field minus send time.
    """
    ends = _window_ends(actions)
    recv: list[list[float]] = [[] for _ in actions]
    ts: list[list[float]] = [[] for _ in actions]
    missing = [0] * len(actions)
    for records in per_socket:
        mine = [r for r in records if r[1] == candidate_id]
        times = [r[0] for r in mine]
        for i, (sent, presence, video) in enumerate(actions):
            found = None
            for record in mine[bisect.bisect_left(times, sent) :]:
                if record[0] >= ends[i]:
                    break
                if (presence is None or record[2] == presence) and (video is None or record[3] == video):
                    found = record
                    break
            if found is None:
                missing[i] += 1
                continue
            recv[i].append(found[0] - sent)
            if found[4]:
                ts[i].append(found[4] / 1000 - sent)
    return {"recv": recv, "ts": ts, "missing": missing}


def merge(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Combine `match_deliveries` results of several workers."""
    n = len(parts[0]["missing"]) if parts else 0
    return {
        "recv": [[x for p in parts for x in p["recv"][i]] for i in range(n)],
        "ts": [[x for p in parts for x in p["ts"][i]] for i in range(n)],
        "missing": [sum(p["missing"][i] for p in parts) for i in range(n)],
    }


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    """p50 / p99 / max (and count) of latencies given in seconds, in milliseconds."""
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50) * 1000, 2),
        "p99_ms": round(percentile(values, 99) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2) if values else math.nan,
    }


def max_in_window(times: Sequence[float], width: float) -> int:
    """The largest number of `times` (sorted) falling in any window `width` long."""
    best = 0
    start = 0
    for end, t in enumerate(times):
        while t - times[start] >= width:
            start += 1
        best = max(best, end - start + 1)
    return best
