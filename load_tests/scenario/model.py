"""What exam a load test rehearses: the scenario's sections and their defaults (pure data).

Frozen dataclasses, read from TOML and checked by loading.py, turned into one plan per simulated
user by schedule.py. Defaults here are the ones a scenario file may leave out (see README.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

Span = tuple[float, float]


@dataclass(frozen=True)
class Arrival:
    curve: str = "ramp"  # all | ramp | waves
    ramp_s: float = 10.0
    waves: int = 3
    wave_gap_s: float = 10.0


@dataclass(frozen=True)
class Churn:
    share: float = 0.0  # of the candidates, who drop (network gone) and come back
    away_s: Span = (5.0, 20.0)


@dataclass(frozen=True)
class ProctorLoss:
    count: int = 0
    at_s: float = 0.0
    away_s: float = 0.0  # 0: they do not come back


@dataclass(frozen=True)
class Finish:
    spread_s: float = 0.0  # candidates finish evenly over the last `spread_s` of the exam


@dataclass(frozen=True)
class Faults:
    recording_drop: int = 0
    recording_fail: int = 0
    camera_loss: int = 0
    camera_loss_s: Span = (10.0, 20.0)
    webhook_lose: float = 0.0  # probability per webhook
    webhook_duplicate: float = 0.0
    webhook_delay: float = 0.0
    webhook_delay_s: float = 3.0
    rest_429: int = 0  # the next N REST calls of the hub to 100ms
    rest_500: int = 0
    node_kill_at_s: float = 0.0  # SIGKILL one hub node this long after t0 (0: none; needs hub.nodes >= 2)


@dataclass(frozen=True)
class Goals:
    join_p99_ms: float = 3000.0
    push_p99_ms: float = 2000.0
    expired_token_s: float = 0.0
    failed_media_joins: int = 0
    unwatched_candidate_s: float = 0.0  # past the grace, while proctors >= occupied rooms
    shortage_candidate_s: float = 0.0  # unwatched while proctors < occupied rooms
    never_assigned: int = 0
    recall: float = 1.0  # faults expected to alert that did
    alert_delay_s: float = 60.0  # live faults: camera, churn, failed recordings
    missing_delay_s: float = 1200.0  # a dropped recording, from the drop to `recording.missing`
    false_alerts: int = 0
    unflagged_missing_recordings: int = 0
    # browser backfill: share of the lost recording time of candidates who stayed online that their
    # pages uploaded back (judge/backfill.py); 0: not a goal
    backfill_coverage: float = 0.0
    # a node kill (faults.node_kill_at_s): its candidates seated again, nobody else dropped
    seats_lost: int = 0  # the dead node's candidates never seated again, or seated in another room
    kill_recovery_s: float = 0.0  # kill -> its candidates re-assigned, every room watched (0: grace + 1)
    bystanders_dropped: int = 0  # users of the live nodes whose socket the hub closed after the kill


@dataclass(frozen=True)
class HubSetup:
    simulator: str = "embedded"  # embedded | standalone
    grace_s: float = 20.0  # HUB_PRESENCE_GRACE_S
    store: str = "memory"  # memory | redis (a redis-server started for the run)
    nodes: int = 1  # hub processes; more than one needs store = "redis"
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Scenario:
    name: str = "custom"
    description: str = ""
    candidates: int = 50
    proctors: int = 5
    exam_s: float = 60.0
    drain_s: float = 30.0
    token_ttl_s: int = 3600
    room_size: int = 10
    proctors_per_room: int = 1
    proctor_load: int = 10
    protocol: str = "json"  # json | msgpack | mixed
    alert_after_s: float = 10.0  # a gap shorter than this is not expected to alert
    seed: int = 1
    workers: int = 0  # 0: one per core
    arrival: Arrival = Arrival()
    churn: Churn = Churn()
    proctor_loss: ProctorLoss = ProctorLoss()
    finish: Finish = Finish()
    faults: Faults = Faults()
    goals: Goals = Goals()
    hub: HubSetup = HubSetup()
    source: str = field(default="", compare=False)

    @property
    def rooms_needed(self) -> int:
        return math.ceil(self.candidates / self.room_size) if self.candidates else 0

    @property
    def kill_recovery_goal_s(self) -> float:
        """The goal for a node kill's recovery: the scenario's, or the hub's grace + 1 s."""
        return self.goals.kill_recovery_s or self.hub.grace_s + 1.0

    @property
    def arrival_span_s(self) -> float:
        a = self.arrival
        return {"all": 0.0, "ramp": a.ramp_s, "waves": (a.waves - 1) * a.wave_gap_s}[a.curve]
