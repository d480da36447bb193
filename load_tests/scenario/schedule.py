"""Who does what when: the scenario turned into one plan per simulated user (pure, seeded).

Times are seconds from the exam's start (t0). Proctors connect `PROCTOR_LEAD_S` before it, as they
do on the day; candidates arrive on the scenario's curve and finish evenly over the last
`finish.spread_s`. Faults go to distinct candidates where there are enough (recording faults first
to those with no other disruption), so every alert can be told apart: a candidate's first
recording is the one dropped or failed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from load_tests.scenario.model import Scenario

PROCTOR_LEAD_S = 3.0
MARGIN_S = 3.0  # disruptions start this long after arrival and end this long before the finish

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CandidatePlan:
    user_id: str
    arrive_s: float
    finish_s: float
    codec: str  # json | msgpack
    churn: tuple[tuple[float, float], ...] = ()  # (at_s, away_s): network gone, then back
    camera: tuple[tuple[float, float], ...] = ()  # (at_s, for_s): video unpublished
    recording_fault: str | None = None  # "recording.drop" | "recording.fail"


@dataclass(frozen=True, slots=True)
class ProctorPlan:
    user_id: str
    arrive_s: float
    codec: str
    loss: tuple[float, float] | None = None  # (at_s, away_s); away 0: never back


def arrivals(s: Scenario) -> list[float]:
    n, a = s.candidates, s.arrival
    if a.curve == "all":
        return [0.0] * n
    if a.curve == "ramp":
        return [a.ramp_s * i / n for i in range(n)]
    per_wave = -(-n // a.waves)
    return [(i // per_wave) * a.wave_gap_s for i in range(n)]


def _codec(s: Scenario, i: int) -> str:
    return ("json", "msgpack")[i % 2] if s.protocol == "mixed" else s.protocol


def _window(rng: random.Random, start: float, end: float, length: float) -> float | None:
    """A start time so that [t, t + length] fits in [start, end]; None if it cannot."""
    if end - length < start:
        return None
    return rng.uniform(start, end - length)


def _pick(rng: random.Random, pool: Sequence[T], count: int, avoid: set[T]) -> list[T]:
    """`count` of `pool`, preferring those not in `avoid`."""
    fresh = [x for x in pool if x not in avoid]
    rng.shuffle(fresh)
    rest = [x for x in pool if x in avoid]
    rng.shuffle(rest)
    return (fresh + rest)[:count]


def build(s: Scenario) -> tuple[list[CandidatePlan], list[ProctorPlan]]:
    rng = random.Random(s.seed)
    n = s.candidates
    arrive = arrivals(s)
    finish = [s.exam_s - s.finish.spread_s * i / max(n - 1, 1) for i in range(n)]
    rng.shuffle(finish)
    finish = [max(f, arrive[i] + 1.0) for i, f in enumerate(finish)]
    indices = list(range(n))
    busy: set[int] = set()
    churn: dict[int, tuple[float, float]] = {}
    for i in _pick(rng, indices, round(s.churn.share * n), busy):
        away = rng.uniform(*s.churn.away_s)
        at = _window(rng, arrive[i] + MARGIN_S, finish[i] - MARGIN_S, away)
        if at is not None:
            churn[i] = (round(at, 3), round(away, 3))
            busy.add(i)
    camera: dict[int, tuple[float, float]] = {}
    for i in _pick(rng, indices, s.faults.camera_loss, busy):
        length = rng.uniform(*s.faults.camera_loss_s)
        at = _window(rng, arrive[i] + MARGIN_S, finish[i] - MARGIN_S, length)
        if at is not None:
            camera[i] = (round(at, 3), round(length, 3))
            busy.add(i)
    recording: dict[int, str] = {}
    wanted = ["recording.drop"] * s.faults.recording_drop + ["recording.fail"] * s.faults.recording_fail
    for i, kind in zip(_pick(rng, indices, len(wanted), busy), wanted, strict=False):
        recording[i] = kind
    candidates = [
        CandidatePlan(
            user_id=f"c{i:05d}",
            arrive_s=round(arrive[i], 3),
            finish_s=round(finish[i], 3),
            codec=_codec(s, i),
            churn=(churn[i],) if i in churn else (),
            camera=(camera[i],) if i in camera else (),
            recording_fault=recording.get(i),
        )
        for i in indices
    ]
    lost = set(rng.sample(range(s.proctors), s.proctor_loss.count))
    proctors = [
        ProctorPlan(
            user_id=f"p{j:04d}",
            arrive_s=-PROCTOR_LEAD_S,
            codec=_codec(s, j),
            loss=(s.proctor_loss.at_s, s.proctor_loss.away_s) if j in lost else None,
        )
        for j in range(s.proctors)
    ]
    return candidates, proctors


def deal(items: Sequence[T], hands: int) -> list[list[T]]:
    """Round-robin `items` over `hands` lists, so every worker gets a share of each arrival wave."""
    return [list(items[h::hands]) for h in range(hands)]


def shifted(plans: Sequence[CandidatePlan], offset_s: float, prefix: str) -> list[CandidatePlan]:
    """The same candidates `offset_s` later under new ids (`prefix` + id): another sitting of the exam
    on the same clock, as `proctorhub demo` runs them one after the other."""

    def later(spans: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
        return tuple((round(at + offset_s, 3), length) for at, length in spans)

    return [
        replace(
            p,
            user_id=f"{prefix}{p.user_id}",
            arrive_s=round(p.arrive_s + offset_s, 3),
            finish_s=round(p.finish_s + offset_s, 3),
            churn=later(p.churn),
            camera=later(p.camera),
        )
        for p in plans
    ]
