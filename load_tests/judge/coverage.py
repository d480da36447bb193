"""Were the candidates watched? Candidate-seconds in rooms no connected proctor held (pure).

Fed once a second with where the connected candidates sit (room -> count, from every worker) and
which rooms the connected proctors hold. A room without a proctor is allowed the grace (a lost
proctor's rooms pass to the others when its grace ends; `SLACK_S` more for the sampling); past it,
every candidate in it counts one candidate-second per second, split by cause: while the connected
proctors were at least as many as the occupied rooms the hub could have covered them
(`unwatched_s`), while they were fewer the scenario could not (`shortage_s`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

MAX_STEP_S = 5.0  # a stalled sample counts at most this much
SLACK_S = 2.0  # once-a-second samples plus the heir's room.assign on its way: a handover at the grace's end


@dataclass
class Coverage:
    grace_s: float
    unwatched_s: float = 0.0
    shortage_s: float = 0.0
    worst_short: tuple[int, int] = (0, 0)  # (proctors, occupied rooms) at the largest shortfall
    shortage_seconds: float = 0.0  # wall seconds with fewer proctors than occupied rooms
    series: list[tuple[float, int, int, int, int]] = field(default_factory=list)
    _since: dict[str, float] = field(default_factory=dict)
    _last: float | None = None

    def feed(self, t: float, rooms: Mapping[str, int], watched: Iterable[str], proctors: int) -> None:
        """One sample at `t`: candidates per room, rooms held by connected proctors, proctors connected."""
        step = 0.0 if self._last is None else min(max(t - self._last, 0.0), MAX_STEP_S)
        self._last = t
        held = set(watched)
        occupied = [room for room, n in rooms.items() if n > 0]
        short = proctors < len(occupied)
        if short:
            self.shortage_seconds += step
            if len(occupied) - proctors > self.worst_short[1] - self.worst_short[0]:
                self.worst_short = (proctors, len(occupied))
        unwatched_now = 0
        for room in occupied:
            if room in held:
                self._since.pop(room, None)
                continue
            since = self._since.setdefault(room, t)
            unwatched_now += rooms[room]
            if t - since > self.grace_s + SLACK_S:
                if short:
                    self.shortage_s += rooms[room] * step
                else:
                    self.unwatched_s += rooms[room] * step
        for room in [r for r in self._since if r not in rooms or rooms[r] <= 0]:
            del self._since[room]
        watched_rooms = sum(1 for room in occupied if room in held)
        self.series.append((t, len(occupied), watched_rooms, unwatched_now, proctors))

    def figures(self) -> dict[str, float]:
        return {
            "unwatched_candidate_s": round(self.unwatched_s, 1),
            "shortage_candidate_s": round(self.shortage_s, 1),
            "shortage_wall_s": round(self.shortage_seconds, 1),
            "worst_shortage_proctors": self.worst_short[0],
            "worst_shortage_rooms": self.worst_short[1],
            "max_occupied_rooms": max((s[1] for s in self.series), default=0),
        }
