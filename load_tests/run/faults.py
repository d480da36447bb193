"""The scenario's faults, armed on the simulator's fault injection (`/_sim/faults`) and disarmed after.

Recording faults are scoped to one candidate each (`user_id`, `count: 1`: that candidate's first
recording is dropped or fails), so the report can name whose recording should be flagged.
Webhook faults are probabilities per webhook (seeded in the simulator, so a run repeats); REST
faults hit the hub's next N calls to 100ms. Every rule added is removed again at the end, also when
the run fails or is interrupted: a shared staging simulator is left as it was found.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from load_tests.run.target import TargetError, http_client
from load_tests.scenario.model import Scenario
from load_tests.scenario.schedule import CandidatePlan


def rules(scenario: Scenario, candidates: Sequence[CandidatePlan]) -> list[dict[str, Any]]:
    """The fault rules a scenario needs (pure)."""
    f = scenario.faults
    out: list[dict[str, Any]] = [
        {"kind": c.recording_fault, "user_id": c.user_id, "count": 1} for c in candidates if c.recording_fault
    ]
    for kind, probability in (
        ("webhook.lose", f.webhook_lose),
        ("webhook.duplicate", f.webhook_duplicate),
        ("webhook.delay", f.webhook_delay),
    ):
        if probability > 0:
            rule: dict[str, Any] = {"kind": kind, "probability": probability}
            if kind == "webhook.delay":
                rule["seconds"] = f.webhook_delay_s
            out.append(rule)
    for kind, count in (("rest.429", f.rest_429), ("rest.500", f.rest_500)):
        if count:
            out.append({"kind": kind, "count": count, "path_prefix": "/v2/rooms"})
    return out


class Armory:
    def __init__(self, sim_url: str) -> None:
        self.sim_url = sim_url
        self.rule_ids: list[str] = []

    def arm(self, scenario: Scenario, candidates: Sequence[CandidatePlan]) -> dict[str, int]:
        """Add every rule; how many of each kind. TargetError if the simulator refuses one."""
        armed: dict[str, int] = {}
        with http_client() as http:
            for rule in rules(scenario, candidates):
                answer = http.post(f"{self.sim_url}/_sim/faults", json=rule)
                if answer.status_code != 200:
                    raise TargetError(
                        f"the simulator refused the fault {rule}: {answer.status_code} {answer.text[:200]}"
                    )
                self.rule_ids.append(str(answer.json()["id"]))
                armed[rule["kind"]] = armed.get(rule["kind"], 0) + 1
        return armed

    def log(self) -> list[dict[str, Any]]:
        """What fired of our rules (the simulator's injection log, filtered to them)."""
        mine = set(self.rule_ids)
        try:
            with http_client(30.0) as http:
                entries = http.get(f"{self.sim_url}/_sim/log").json().get("injected", [])
        except (httpx.HTTPError, ValueError):
            return []
        return [e for e in entries if e.get("rule_id") in mine]

    def disarm(self) -> int:
        """Remove our rules that are still armed (used-up ones are gone already); how many were left."""
        left = 0
        try:
            with http_client() as http:
                for rule_id in self.rule_ids:
                    left += http.delete(f"{self.sim_url}/_sim/faults/{rule_id}").status_code == 200
        except httpx.HTTPError:
            pass
        self.rule_ids = []
        return left
