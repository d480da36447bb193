"""Fault injection: rules that make the simulator misbehave on purpose, and the log of what it did.

A rule has a `kind` (see KINDS), optional scope (`room_id`, `peer_id`, `user_id`, `event_type` prefix,
`path_prefix`), and fires for the next `count` matching occasions, with `probability` on each, or
(neither given) on every one. Probabilities draw from the simulator's seeded `random.Random`, so a
run is repeatable. Every firing is appended to `injected` with the time and the ids involved, so a
test or load test can compare what was injected with what the hub detected.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from server.hms.simulator import times
from server.hms.simulator.errors import bad_request

KINDS = {
    "recording.drop": "a peer's stream recording never arrives: no event, no object, no asset",
    "recording.fail": "stream.recording.failure with error_message INTERNAL_ERROR, no object",
    "webhook.lose": "the event is never delivered",
    "webhook.fail": "one delivery attempt is lost on the way (100ms retries it, then gives up)",
    "webhook.duplicate": "the event is delivered twice (same id)",
    "webhook.delay": "the event is delivered `seconds` late",
    "webhook.reorder": "the event is held back and delivered after the next event",
    "network.kick": "a peer that loses its network is dropped at once (no reconnect window)",
    "rest.429": "a REST call answers 429",
    "rest.500": "a REST call answers 500",
    "rest.timeout": "a REST call answers only after `seconds` (longer than a client timeout)",
}
SCOPES = ("room_id", "peer_id", "user_id", "event_type", "path_prefix")


@dataclass
class FaultRule:
    kind: str
    id: str = ""
    room_id: str | None = None
    peer_id: str | None = None
    user_id: str | None = None
    event_type: str | None = None  # prefix, e.g. "stream.recording" or "peer.leave.success"
    path_prefix: str | None = None  # REST path prefix, e.g. "/v2/rooms"
    count: int | None = None
    probability: float | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Injection:
    at: float
    time: str
    kind: str
    rule_id: str
    room_id: str | None = None
    session_id: str | None = None
    peer_id: str | None = None
    user_id: str | None = None
    event_id: str | None = None
    event_type: str | None = None
    path: str | None = None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Occasion:
    """What is happening that a rule may apply to."""

    room_id: str | None = None
    session_id: str | None = None
    peer_id: str | None = None
    user_id: str | None = None
    event_id: str | None = None
    event_type: str | None = None
    path: str | None = None


def parse_rule(body: dict[str, Any]) -> FaultRule:
    """A rule from `POST /_sim/faults` JSON; HmsError 400 on anything unexpected."""
    if not isinstance(body, dict):
        raise bad_request("Invalid fault", "the body must be a JSON object")
    kind = body.get("kind")
    if kind not in KINDS:
        raise bad_request("Invalid fault", f"kind must be one of {sorted(KINDS)}")
    unknown = set(body) - {"kind", "count", "probability", "seconds", *SCOPES}
    if unknown:
        raise bad_request("Invalid fault", f"unknown fields: {sorted(unknown)}")
    for name in SCOPES:
        if body.get(name) is not None and not isinstance(body[name], str):
            raise bad_request("Invalid fault", f"{name} must be a string")
    count, probability, seconds = body.get("count"), body.get("probability"), body.get("seconds", 0.0)
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise bad_request("Invalid fault", "count must be a positive integer")
    if probability is not None and (not isinstance(probability, int | float) or not 0 <= probability <= 1):
        raise bad_request("Invalid fault", "probability must be between 0 and 1")
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
        raise bad_request("Invalid fault", "seconds must be a non-negative number")
    if kind in ("webhook.delay", "rest.timeout") and not seconds:
        raise bad_request("Invalid fault", f"{kind} needs seconds > 0")
    scope = {name: body.get(name) for name in SCOPES}
    return FaultRule(kind=kind, count=count, probability=probability, seconds=float(seconds), **scope)


class Faults:
    def __init__(self, rng: random.Random, clock: Callable[[], float]) -> None:
        self._rng = rng
        self._clock = clock
        self._ids = itertools.count(1)
        self.rules: list[FaultRule] = []
        self.injected: list[Injection] = []

    def add(self, rule: FaultRule) -> FaultRule:
        if rule.kind not in KINDS:
            raise ValueError(f"unknown fault kind {rule.kind!r}; one of {sorted(KINDS)}")
        rule.id = rule.id or f"f{next(self._ids)}"
        self.rules.append(rule)
        return rule

    def remove(self, rule_id: str) -> bool:
        before = len(self.rules)
        self.rules = [r for r in self.rules if r.id != rule_id]
        return len(self.rules) < before

    def clear(self) -> None:
        self.rules.clear()

    def take(self, kind: str, occasion: Occasion, *, detail: str = "") -> FaultRule | None:
        """The first rule of `kind` that matches and fires on this occasion (logged), else None."""
        for rule in list(self.rules):
            if rule.kind != kind or not _matches(rule, occasion):
                continue
            if rule.probability is not None and self._rng.random() >= rule.probability:
                continue
            if rule.count is not None:
                rule.count -= 1
                if rule.count <= 0:
                    self.rules.remove(rule)
            self._record(rule, occasion, detail)
            return rule
        return None

    def _record(self, rule: FaultRule, occasion: Occasion, detail: str) -> None:
        now = self._clock()
        self.injected.append(
            Injection(
                at=now,
                time=times.nanos(now),
                kind=rule.kind,
                rule_id=rule.id,
                room_id=occasion.room_id,
                session_id=occasion.session_id,
                peer_id=occasion.peer_id,
                user_id=occasion.user_id,
                event_id=occasion.event_id,
                event_type=occasion.event_type,
                path=occasion.path,
                detail=detail,
            )
        )


def _matches(rule: FaultRule, occasion: Occasion) -> bool:
    # REST calls carry the room in the path, not as a field.
    in_path = occasion.path is not None and rule.room_id is not None and rule.room_id in occasion.path
    if rule.room_id is not None and rule.room_id != occasion.room_id and not in_path:
        return False
    if rule.peer_id is not None and rule.peer_id != occasion.peer_id:
        return False
    if rule.user_id is not None and rule.user_id != occasion.user_id:
        return False
    if rule.event_type is not None and not (occasion.event_type or "").startswith(rule.event_type):
        return False
    return rule.path_prefix is None or (occasion.path or "").startswith(rule.path_prefix)
