"""Bound what one user's media reports can write: changes only, a burst, then one per `refill_s`.

`media.status` (a candidate's own report) and `media.observed` (a proctor's view of a candidate)
become timeline signals the recording monitor keeps. Here, per key (a candidate, or a proctor and
the candidate it watches) and across all of that user's sockets on this node:
- a report that repeats the key's last passed state is dropped (`same`);
- a change passes while the key's bucket has a token (`passed`): `burst` of them, refilled at one
  per `refill_s`;
- over that, the change is held and replaces any change held before it (`held`); when a token comes
  back the latest held state passes, unless it is the last passed one again. Nothing is refused:
  the hub learns the newest state late, never a stale one.

`GateCore` decides (pure: the caller passes `now`); `MediaGate` runs the timers and hands what
passes to `apply`. A key idle long enough for its bucket to be full again, with nothing held, is
forgotten (checked every `PRUNE_EVERY` reports), so the gate holds only recently active users.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from server.hubs.ratelimit import TokenBucket
from server.hubs.timers import Timer, TimerLoop

K = TypeVar("K", bound=Hashable)
PRUNE_EVERY = 1024
Outcome = Literal["passed", "same", "held"]


_NOTHING = object()


@dataclass(slots=True)
class _Slot:
    bucket: TokenBucket
    state: Hashable = _NOTHING
    """The last state passed (`_NOTHING` before the first)."""
    held: tuple[Hashable, Any] | None = None
    seen_at: float = 0.0
    timer: Timer | None = field(default=None, repr=False)


class GateCore(Generic[K]):
    def __init__(self, *, burst: int, refill_s: float) -> None:
        self.burst = burst
        self.refill_s = refill_s
        self._slots: dict[K, _Slot] = {}
        self._offers = 0

    def offer(self, key: K, state: Hashable, payload: Any, now: float) -> Outcome:
        self._offers += 1
        if self._offers % PRUNE_EVERY == 0:
            self.prune(now)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot(TokenBucket(1.0 / self.refill_s, self.burst, now))
        slot.seen_at = max(slot.seen_at, now)
        if slot.state == state:
            slot.held = None  # back to what was passed: nothing left to tell
            return "same"
        if slot.held is None and slot.bucket.allow(now):
            slot.state = state
            return "passed"
        slot.held = (state, payload)
        return "held"

    def release(self, key: K, now: float) -> tuple[Hashable, Any] | None:
        """The held change of `key` if a token is back (it is then the passed state), else None."""
        slot = self._slots.get(key)
        if slot is None or slot.held is None or not slot.bucket.allow(now):
            return None
        state, payload = slot.held
        slot.held = None
        slot.state = state
        return state, payload

    def holding(self, key: K) -> bool:
        slot = self._slots.get(key)
        return slot is not None and slot.held is not None

    def slot(self, key: K) -> _Slot | None:
        return self._slots.get(key)

    def prune(self, now: float) -> int:
        """Forget keys idle long enough for their bucket to be full, with nothing held; how many.
        Such a key's next report passes as a first one would (at worst a repeat is stored once)."""
        idle = self.burst * self.refill_s
        gone = [k for k, s in self._slots.items() if s.held is None and now - s.seen_at >= idle]
        for key in gone:
            del self._slots[key]
        return len(gone)


Apply = Callable[[Any, Any], Awaitable[None]]
"""Called with (key, payload) for each report that passes."""
Spawn = Callable[[Awaitable[Any], str], None]


class MediaGate(Generic[K]):
    def __init__(
        self,
        core: GateCore[K],
        apply: Apply,
        *,
        timers: TimerLoop,
        clock: Callable[[], float],
        spawn: Callable[..., None],
    ) -> None:
        self._core = core
        self._apply = apply
        self._timers = timers
        self._clock = clock
        self._spawn = spawn

    async def offer(self, key: K, state: Hashable, payload: Any) -> Outcome:
        outcome = self._core.offer(key, state, payload, self._clock())
        if outcome == "passed":
            await self._apply(key, payload)
        elif outcome == "held":
            self._later(key)
        return outcome

    def _later(self, key: K) -> None:
        slot = self._core.slot(key)
        if slot is None or (slot.timer is not None and not slot.timer.cancelled):
            return
        slot.timer = self._timers.call_at(self._clock() + self._core.refill_s, lambda: self._due(key))

    def _due(self, key: K) -> None:
        slot = self._core.slot(key)
        if slot is not None:
            slot.timer = None
        released = self._core.release(key, self._clock())
        if released is not None:
            self._spawn(self._apply(key, released[1]), "held media report")
        elif self._core.holding(key):
            self._later(key)
