"""The run's verdict in a file and on the terminal: report.json (with the hub's profile, when it was
profiled) and the few lines printed at the end, so a CI log says what failed without opening a file."""

from __future__ import annotations

import json
import pstats
from pathlib import Path
from typing import Any


def profile_top(path: Path, limit: int = 25) -> list[dict[str, Any]]:
    """The hub's busiest functions by own time, from a cProfile dump."""
    stats = pstats.Stats(str(path))
    rows = []
    for (filename, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{name} ({Path(filename).name}:{line})",
                "calls": calls,
                "own_s": round(own, 3),
                "cumulative_s": round(cumulative, 3),
            }
        )
    return sorted(rows, key=lambda r: -r["own_s"])[:limit]


def hub_profile(path: Path | None) -> dict[str, Any] | None:
    """The profiled hub's table: cProfile's dump (.prof) summarised, or the stack sampler's JSON."""
    if path is None or not path.exists():
        return None
    if path.suffix == ".prof":
        return {"by_own": profile_top(path)}
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def write(report: dict[str, Any], run_dir: Path) -> Path:
    path = run_dir / "report.json"
    path.write_text(json.dumps(report, indent=1, default=str))
    return path


def summary(report: dict[str, Any], path: Path, page: Path) -> str:
    v, f = report["verdict"], report["figures"]
    lines = [f"{'PASS' if v['ok'] else 'FAIL'}: {report['scenario']['name']}: {v['summary']}"]
    for c in v["checks"]:
        lines.append(f"  {'ok  ' if c['ok'] else 'MISS'} {c['goal']}: {c['text']}")
    det = report["detection"]
    for kind, row in sorted(det["by_kind"].items()):
        lines.append(
            f"  fault {kind}: armed {row['armed']}, injected {row['injected']}, expected to alert "
            f"{row['expected']}, alerted {row['detected']}, delay p50 {row['delay_p50_s']} s"
        )
    lines.append(
        f"  false alerts {f['false_alerts']}, alerts seen {f['alerts_seen']}; recordings expected "
        f"{f['recordings_expected']}, flagged missing {f['recordings_flagged_missing']}"
    )
    if (k := report.get("node_kill")) is not None:
        lines.append(
            f"  node kill: node {k['node_killed']} at {k['killed_at_s']} s held {k['dead_node_candidates']} "
            f"candidates; seats lost {k['seats_lost']}, re-seated p50 {k['reseated_p50_s']} s, "
            f"max {k['reseated_max_s']} s, all back and watched after {k['kill_recovery_s']} s; "
            f"bystanders dropped {k['bystanders_dropped']}"
        )
    if (b := report.get("backfill")) is not None and b.get("backfill_lost_s"):
        lines.append(
            f"  backfill: coverage {b['backfill_coverage']} (churned {b['backfill_coverage_churned']}), "
            f"lost {b['backfill_lost_s']} s, recovered {b['backfill_recovered_s']} s in "
            f"{b['backfill_segments']} segments; delay p50 {b['backfill_delay_p50_s']} s, max "
            f"{b['backfill_delay_max_s']} s; {b['backfill_bytes_per_candidate_hour']} bytes per "
            f"candidate-hour; last archived {b['backfill_done_after_exam_s']} s after the exam"
        )
    lines.append(f"  tester: {report['resources']['tester_note']}")
    lines += [f"  note: {note}" for note in report["notes"]]
    lines.append(f"report: {path}\nhtml:   {page}")
    return "\n".join(lines)
