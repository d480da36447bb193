"""Proctors for occupied rooms: cover, then balance, then rotate (pure; used by planner.py).

Works on room indices and plain lists so it needs none of the planner's types. The model:

- a proctor's load is the sum of the candidates of the rooms it watches (every proctor of a
  room sees the whole room);
- the load L is a cap, with one exception: a proctor may always hold one room, whatever its
  size. So when proctors run short some rooms stay unwatched (and rotate), rather than a few
  proctors watching far more than L;
- coverage first: a room gets a second proctor only when every room has one, and only from
  proctors that would otherwise watch nothing;
- hysteresis: proctors keep what they hold; a room moves between two proctors only when their
  loads differ by more than one room (N candidates), and only if the move narrows the gap;
- rotation (shortage only): a room that has waited `rotation_s` takes the proctor of the room
  watched longest, if that room has been watched `rotation_s` too. So a room loses its proctor
  to rotation only after `rotation_s` of being watched, and the longest-waiting room is next.

`assign` runs cover, balance and rotate until a whole pass changes nothing, so the result is a
fixed point: planning it again (same `now`) moves nobody.
"""

from __future__ import annotations

import heapq
from bisect import insort
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Shortage:
    """Fewer proctors than the occupied rooms need: the admin dashboard's alert."""

    proctors_present: int
    rooms_needing: int  # open rooms with unfinished candidates
    rooms_unwatched: int  # of those, how many are left without a proctor by the plan


@dataclass(frozen=True, slots=True)
class Limits:
    room_size: int  # N: also the balance band (hysteresis)
    per_room: int  # M
    load: int  # L
    rotation_s: float


class Board:
    """The working assignment: the rooms each proctor holds, the watchers of each room, loads."""

    def __init__(self, weights: Sequence[int], present: Sequence[str], limits: Limits) -> None:
        self.w = weights
        self.limits = limits
        self.rank = {p: k for k, p in enumerate(present)}
        self.held: dict[str, set[int]] = {p: set() for p in present}
        self.load = dict.fromkeys(present, 0)
        self.rooms = [i for i, w in enumerate(weights) if w > 0]
        self.watchers: dict[int, set[str]] = {i: set() for i in self.rooms}

    def add(self, p: str, i: int) -> None:
        self.held[p].add(i)
        self.watchers[i].add(p)
        self.load[p] += self.w[i]

    def drop(self, p: str, i: int) -> None:
        self.held[p].discard(i)
        self.watchers[i].discard(p)
        self.load[p] -= self.w[i]

    def fits(self, p: str, i: int) -> bool:
        """A proctor may take a room if it holds nothing yet or stays within L."""
        return not self.held[p] or self.load[p] + self.w[i] <= self.limits.load

    def uncovered(self) -> list[int]:
        return [i for i in self.rooms if not self.watchers[i]]

    # ------------------------------------------------------------------ caps

    def enforce_caps(self) -> None:
        """At most M proctors per room (the busiest leave), then L per proctor (largest rooms go)."""
        for i in self.rooms:
            extra = len(self.watchers[i]) - self.limits.per_room
            if extra > 0:
                leaving = sorted(
                    self.watchers[i], key=lambda p: (-len(self.held[p]), -self.load[p], -self.rank[p])
                )
                for p in leaving[:extra]:
                    self.drop(p, i)
        for p, held in self.held.items():
            while len(held) > 1 and self.load[p] > self.limits.load:
                self.drop(p, max(held, key=lambda i: (self.w[i], i)))

    # -------------------------------------------------------------- coverage

    def cover(self, waited: Sequence[float]) -> bool:
        """Give each unwatched room (longest waiting first) the lightest proctor that fits."""
        waiting = sorted(self.uncovered(), key=lambda i: (waited[i], -self.w[i], i))
        if not waiting or not self.held:
            return False
        left = self._cover_rooms(waiting, allow_strip=True)
        if left and self._strip_all_seconds():
            self._cover_rooms(left, allow_strip=False)
            return True
        return len(left) < len(waiting)

    def _cover_rooms(self, waiting: list[int], *, allow_strip: bool) -> list[int]:
        """Rooms left uncovered. A heap of (load, rank) keeps this O(R log P), not O(R * P)."""
        heap = [(self.load[p], self.rank[p], p) for p in self.held]
        heapq.heapify(heap)
        shared = [i for i in self.rooms if len(self.watchers[i]) > 1] if allow_strip else []
        left = []
        for u in waiting:
            while heap[0][0] != self.load[heap[0][2]]:  # stale entry: that proctor's load moved
                heapq.heappop(heap)
            p = heap[0][2]
            if self.fits(p, u):
                self.add(p, u)
                heapq.heapreplace(heap, (self.load[p], self.rank[p], p))
                continue
            shared = [i for i in shared if len(self.watchers[i]) > 1]
            taker = self._second_takes(u, shared)
            if taker is None:
                left.append(u)
            else:
                heapq.heappush(heap, (self.load[taker], self.rank[taker], taker))
        return left

    def _second_takes(self, u: int, shared: list[int]) -> str | None:
        """Coverage before seconds: a second proctor leaves its room for `u` if that fits it."""
        best: tuple[tuple[int, int, int], str, int] | None = None
        for i in shared:
            for p in self.watchers[i]:
                after = self.load[p] - self.w[i] + self.w[u]
                if len(self.held[p]) == 1 or after <= self.limits.load:
                    key = (len(self.held[p]), after, self.rank[p])
                    if best is None or key < best[0]:
                        best = (key, p, i)
        if best is None:
            return None
        _, p, i = best
        self.drop(p, i)
        self.add(p, u)
        return p

    def _strip_all_seconds(self) -> bool:
        """Last resort for coverage: every room keeps one proctor, the others are freed."""
        stripped = False
        for i in self.rooms:
            if len(self.watchers[i]) > 1:
                keep = min(self.watchers[i], key=lambda p: (len(self.held[p]), self.rank[p]))
                for p in self.watchers[i] - {keep}:
                    self.drop(p, i)
                stripped = True
        return stripped

    # --------------------------------------------------------------- balance

    def balance(self) -> bool:
        """Move rooms from heavy to light proctors while two loads differ by more than one room."""
        band = self.limits.room_size
        ranked = sorted((self.load[p], self.rank[p], p) for p in self.held)
        if not ranked or ranked[-1][0] - ranked[0][0] <= band:
            return False
        changed = False
        while self._move_one(ranked, band):
            changed = True
        return changed

    def _move_one(self, ranked: list[tuple[int, int, str]], band: int) -> bool:
        """One move from the heaviest proctor that has a movable room; `ranked` is kept sorted."""
        for hi in range(len(ranked) - 1, 0, -1):
            heavy, _, h = ranked[hi]
            if heavy - ranked[0][0] <= band:
                return False
            for lo in range(hi):
                light, _, q = ranked[lo]
                if heavy - light <= band:
                    break
                room = self._movable(h, q, ranked, band)
                if room is not None:
                    del ranked[hi], ranked[lo]  # hi > lo: delete the later index first
                    self.drop(h, room)
                    self.add(q, room)
                    insort(ranked, (self.load[h], self.rank[h], h))
                    insort(ranked, (self.load[q], self.rank[q], q))
                    return True
        return False

    def _movable(self, h: str, q: str, ranked: list[tuple[int, int, str]], band: int) -> int | None:
        """The room of `h` that `q` could take and that narrows their gap the most.

        Rooms whose move would put `h` or `q` out of the band of a third proctor come last (a
        room larger than N can): such a move makes the next move between others, so a proctor
        back from absence would reshuffle rooms among the proctors who stayed."""
        gap = self.load[h] - self.load[q]
        fitting = [
            i for i in self.held[h] if q not in self.watchers[i] and self.w[i] < gap and self.fits(q, i)
        ]
        others = [load for load, _, p in ranked[:3] + ranked[-3:] if p not in (h, q)]
        if not others:
            return min(fitting, key=lambda i: (abs(gap - 2 * self.w[i]), i), default=None)
        top, bottom = max(others), min(others)
        heavy, light = self.load[h], self.load[q]

        def spills(i: int) -> bool:
            w = self.w[i]
            return heavy - w < top - band <= heavy or light + w > bottom + band >= light

        return min(fitting, key=lambda i: (spills(i), abs(gap - 2 * self.w[i]), i), default=None)

    # -------------------------------------------------------------- rotation

    def rotate(self, waited: list[float], watched: list[float], now: float) -> bool:
        """Shortage: rooms that waited `rotation_s` take proctors from rooms watched that long."""
        rot = self.limits.rotation_s
        due = sorted((waited[i], i) for i in self.uncovered() if now - waited[i] >= rot)
        if not due:
            return False
        givers = [i for i in self.rooms if len(self.watchers[i]) == 1 and now - watched[i] >= rot]
        givers.sort(key=lambda i: (watched[i], i))
        changed = False
        for _, u in due:
            for k, w in enumerate(givers):
                (p,) = self.watchers[w]
                if len(self.held[p]) == 1 or self.load[p] - self.w[w] + self.w[u] <= self.limits.load:
                    self.drop(p, w)
                    self.add(p, u)
                    waited[w], watched[u] = now, now
                    del givers[k]
                    changed = True
                    break
        return changed

    # --------------------------------------------------------------- seconds

    def add_seconds(self) -> None:
        """Idle proctors join the rooms with the fewest proctors and the most candidates.

        Coverage comes first without a check here: an idle proctor fits any room, so after
        `cover` there are idle proctors only if every room already has one."""
        if self.limits.per_room < 2:
            return
        idle = [p for p, held in self.held.items() if not held]
        heap = [(len(self.watchers[i]), -self.w[i], i) for i in self.rooms]
        heap = [entry for entry in heap if entry[0] < self.limits.per_room]
        heapq.heapify(heap)
        for p in idle:
            if not heap:
                return
            count, neg_w, i = heapq.heappop(heap)
            self.add(p, i)
            if count + 1 < self.limits.per_room:
                heapq.heappush(heap, (count + 1, neg_w, i))


def assign(
    weights: Sequence[int],
    current: Iterable[tuple[str, int]],
    present: Sequence[str],
    limits: Limits,
    waited: Sequence[float],
    watched: Sequence[float],
    now: float,
) -> tuple[dict[str, set[int]], int]:
    """Rooms per present proctor (room indices) and how many occupied rooms stay unwatched.

    `weights[i]` is room i's count of unfinished candidates (0: needs no proctor); `current`
    the (proctor, room) pairs held now; `waited[i]` / `watched[i]` since when room i has been
    unwatched / watched (as `apply` will record them).
    """
    board = Board(weights, present, limits)
    for p, i in current:
        board.add(p, i)
    board.enforce_caps()
    waited_now, watched_now = list(waited), list(watched)
    while True:
        changed = board.cover(waited_now)
        changed = board.balance() or changed
        changed = board.rotate(waited_now, watched_now, now) or changed
        if not changed:
            break
    board.add_seconds()
    return board.held, len(board.uncovered())
