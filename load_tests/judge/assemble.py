"""The report of one run: everything collected, put together with the figures and the verdict.

Input is plain data (the workers' records, the coverage meter, the observer's samples, the
simulator's injection log, the hub's report endpoint if it has one); output is the JSON report
that the HTML page and a CI job read. No I/O here.
"""

from __future__ import annotations

import collections
from dataclasses import asdict
from typing import Any

from load_tests.judge import backfill, detection, node_kill, verdict
from load_tests.judge.coverage import Coverage
from load_tests.scenario.model import Scenario
from server.recording.backfill.plan import Rules


def _merge_counts(parts: list[dict[str, Any]], key: str) -> dict[str, int]:
    total: collections.Counter[str] = collections.Counter()
    for part in parts:
        total.update(part.get(key, {}))
    return dict(total.most_common())


def resources(
    samples: list[dict[str, Any]], rates: list[dict[str, Any]], t0: float, workers: int
) -> dict[str, Any]:
    series = [{**r, "t_s": round(r["t"] - t0, 1)} for r in rates]
    tester = [r["tester_cores"] for r in rates]
    hub = [r["hub_cores"] for r in rates if r.get("hub_cores") is not None]
    rss = [r["hub_rss_mib"] for r in rates if r.get("hub_rss_mib") is not None]
    other = [r["other_cores"] for r in rates]
    peak_tester = max(tester, default=0.0)
    note = f"peak {peak_tester:.2f} of {workers + 1} processes' cores"
    if peak_tester > 0.9 * workers:
        note += ": the tester was near its limit, figures may show the client rather than the hub"
    last = samples[-1] if samples else {}
    return {
        "series": series,
        "hub_cores_mean": round(sum(hub) / len(hub), 3) if hub else None,
        "hub_cores_peak": round(max(hub), 3) if hub else None,
        "hub_rss_peak_mib": round(max(rss), 1) if rss else None,
        "tester_cores_mean": round(sum(tester) / len(tester), 3) if tester else None,
        "tester_cores_peak": round(peak_tester, 3),
        "other_cores_mean": round(sum(other) / len(other), 3) if other else None,
        "tester_note": note,
        "hub_metrics_at_end": {k: v for k, v in last.items() if not k.endswith(("_cpu_s", "_rss_kib"))},
    }


def backfill_rules(scenario: Scenario) -> tuple[float, float]:
    """The hub's BACKFILL_MIN_S and BACKFILL_SLACK_S: the scenario's hub settings, else the defaults."""
    env, rules = dict(scenario.hub.env), Rules()
    return float(env.get("BACKFILL_MIN_S", rules.min_s)), float(env.get("BACKFILL_SLACK_S", rules.slack_s))


def build(
    *,
    scenario: Scenario,
    target: dict[str, Any],
    started: str,
    t0: float,
    parts: list[dict[str, Any]],
    coverage: Coverage,
    timeline: list[dict[str, Any]],
    samples: list[dict[str, Any]],
    rates: list[dict[str, Any]],
    sim_log: list[dict[str, Any]],
    armed: dict[str, int],
    hub_report: dict[str, Any] | None,
    workers: int,
    interrupted: bool,
    notes: list[str],
    kill: dict[str, Any] | None = None,
    timelines: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    latency = verdict.latency_figures(parts, t0, scenario.exam_s)
    tokens = verdict.token_figures(parts)
    alerts = detection.first_sightings(a for p in parts for a in p["alerts"])
    injected = detection.injections([i for p in parts for i in p["injected"]], sim_log)
    webhook_touched = {
        str(e["user_id"])
        for e in sim_log
        if str(e.get("kind", "")).startswith("webhook.") and e.get("user_id")
    }
    fired = dict(collections.Counter(str(e.get("kind")) for e in sim_log))
    found = detection.account(
        injected,
        alerts,
        alert_after_s=scenario.alert_after_s,
        armed=armed,
        touched_by_webhook_faults=webhook_touched,
        fired_elsewhere=fired,
    )
    peers = [p for part in parts for p in part["peers"]]
    recs = detection.recordings(peers, found, alerts, hub_report)
    failures = [f for p in parts for f in p["media_failures"]]
    refused = [f for f in failures if f["status"] >= 400]  # 100ms (the simulator) said no: a token problem
    never = [c for p in parts for c in p["never_assigned"]]
    res = resources(samples, rates, t0, workers)
    min_s, slack_s = backfill_rules(scenario)
    recovered = backfill.figures(
        {cid: page for p in parts for cid, page in p.get("pages", {}).items()},
        timelines or {},
        [seg for p in parts for seg in p.get("backfill", [])],
        min_s=min_s,
        slack_s=slack_s,
        exam_end=t0 + scenario.exam_s,
    )
    figures: dict[str, Any] = {
        **{k: v for k, v in latency.items() if k not in ("join_series", "push_points")},
        **{k: v for k, v in tokens.items() if k != "margins"},
        **coverage.figures(),
        "failed_media_joins": len(refused),
        "media_calls_unanswered": len(failures) - len(refused),
        "media_joins": sum(p["counts"].get("media_joins", 0) for p in parts),
        "media_reconnects": sum(p["counts"].get("media_reconnects", 0) for p in parts),
        "never_assigned": len(never),
        "recall": found["recall"],
        "faults_expected_to_alert": found["expected"],
        "faults_detected": found["detected"],
        "alert_delay_max_s": found["delay_max_s"],
        "alert_delay_p50_s": found["delay_p50_s"],
        "missing_delay_max_s": found["missing_delay_max_s"],
        "false_alerts": len(found["false_alerts"]),
        "alerts_seen": found["alerts_seen"],
        "recordings_expected": recs["expected"],
        "recordings_flagged_missing": recs["flagged_missing"],
        "unflagged_missing_recordings": recs["unflagged_missing"],
        "hub_cores_mean": res["hub_cores_mean"],
        "hub_rss_peak_mib": res["hub_rss_peak_mib"],
        "tester_cores_peak": res["tester_cores_peak"],
        **{k: v for k, v in recovered.items() if k != "backfill_short"},
        "interrupted": interrupted,
    }
    killed = None
    if kill is not None:
        killed = node_kill.figures(parts, timeline, t0=t0, node=kill["node"], killed_at=kill["at"])
        figures.update({k: killed[k] for k in ("node_killed", *(g for g, _ in verdict.KILL_GOALS))})
    checks = verdict.judge(scenario, figures)
    missed = [c for c in checks if not c["ok"]]
    summary = (
        "every goal met"
        if not missed
        else "goals missed: " + "; ".join(f"{c['goal']} = {c['text']}: {c['why']}" for c in missed)
    )
    return {
        "scenario": {**asdict(scenario), "rooms_needed": scenario.rooms_needed},
        "goals": asdict(scenario.goals),
        "target": target,
        "started": started,
        "t0": t0,
        "verdict": {"ok": not missed, "summary": summary, "checks": checks},
        "figures": figures,
        "latency": latency,
        "tokens": tokens,
        "detection": found,
        "injected": {
            "armed": armed,
            "fired": {**fired, **collections.Counter(i["kind"] for i in injected)},
            "simulator_log": sim_log,
        },
        "recordings": recs,
        "backfill": {**recovered, "timelines_read": len(timelines or {})},
        "media_failures": failures[:200],
        "never_assigned": never[:200],
        "timeline": timeline,
        "coverage_series": coverage.series,
        "resources": res,
        "closes": _merge_counts(parts, "closes"),
        "errors": _merge_counts(parts, "errors"),
        "counts": _merge_counts(parts, "counts"),
        "hub_report": hub_report,
        "node_kill": killed,
        "notes": notes,
    }
