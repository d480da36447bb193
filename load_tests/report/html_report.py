"""The one-page HTML verdict: goals on top, then the plots (matplotlib, Agg backend, inlined PNGs).

Plots: join latency p50/p99 over time; push latency over time; token refresh margins; candidates
connected / assigned / unwatched and rooms occupied / watched over time; hub RSS and CPU with the
tester's CPU; faults injected against detected per kind, with each alert's delay.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _axes(title: str, xlabel: str = "seconds from the exam's start") -> tuple[Any, Any]:
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.grid(alpha=0.3)
    return fig, ax


def plot_joins(report: dict[str, Any]) -> str:
    series = report["latency"]["join_series"]
    fig, ax = _axes("join latency (auth -> room.assign)")
    xs = [s["t_s"] for s in series]
    ax.plot(xs, [s["p50_ms"] for s in series], label="p50")
    ax.plot(xs, [s["p99_ms"] for s in series], label="p99")
    ax.axhline(report["goals"]["join_p99_ms"], color="red", linestyle=":", label="p99 goal")
    ax.set_ylabel("ms")
    ax.legend(fontsize=8)
    return _png(fig)


def plot_push(report: dict[str, Any]) -> str:
    points = report["latency"]["push_points"]
    fig, ax = _axes("push latency (candidate change -> its proctors)")
    if points:
        ax.scatter([p[0] for p in points], [p[1] for p in points], s=4, alpha=0.5)
    ax.set_ylabel("ms")
    return _png(fig)


def plot_margins(report: dict[str, Any]) -> str:
    margins = report["tokens"]["margins"]
    fig, ax = _axes("100ms token: seconds left on the old token at ack of the new", "seconds")
    if margins:
        ax.hist(margins, bins=40)
    ax.axvline(0, color="red", linestyle=":")
    return _png(fig)


def plot_coverage(report: dict[str, Any]) -> str:
    timeline = report["timeline"]
    fig, ax = _axes("candidates and rooms")
    xs = [p["t_s"] for p in timeline]
    for key, label in (
        ("connected", "candidates connected"),
        ("assigned", "assigned"),
        ("unwatched", "unwatched now"),
        ("rooms", "rooms occupied"),
        ("watched", "rooms watched"),
        ("proctors", "proctors connected"),
    ):
        ax.plot(xs, [p[key] for p in timeline], label=label)
    ax.legend(fontsize=7)
    return _png(fig)


def plot_resources(report: dict[str, Any]) -> str:
    rows = report["resources"]["series"]
    fig, ax = _axes("hub RSS and CPU; tester CPU")
    xs = [r["t_s"] for r in rows]
    ax.plot(xs, [r.get("hub_cores") for r in rows], label="hub cores")
    ax.plot(xs, [r.get("tester_cores") for r in rows], label="tester cores")
    if any("simulator_cores" in r for r in rows):
        ax.plot(xs, [r.get("simulator_cores") for r in rows], label="simulator cores")
    ax.plot(xs, [r.get("other_cores") for r in rows], label="other processes", alpha=0.5)
    ax.set_ylabel("cores")
    ax.legend(fontsize=7, loc="upper left")
    right = ax.twinx()
    right.plot(xs, [r.get("hub_rss_mib") for r in rows], color="black", linestyle="--", label="hub RSS")
    right.set_ylabel("hub RSS MiB")
    return _png(fig)


def plot_faults(report: dict[str, Any]) -> str:
    rows = report["detection"]["by_kind"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.6, 3.2))
    kinds = sorted(rows)
    xs = range(len(kinds))
    left.bar(
        [x - 0.2 for x in xs], [rows[k]["expected"] for k in kinds], width=0.4, label="expected to alert"
    )
    left.bar([x + 0.2 for x in xs], [rows[k]["detected"] for k in kinds], width=0.4, label="alerted")
    left.set_xticks(list(xs), kinds, fontsize=7)
    left.set_title("faults injected vs alerted", fontsize=10)
    left.legend(fontsize=7)
    for i, kind in enumerate(kinds):
        delays = rows[kind]["delays_s"]
        right.scatter([i] * len(delays), delays, s=10)
    right.set_xticks(list(xs), kinds, fontsize=7)
    right.set_title("each alert's delay after its fault (s)", fontsize=10)
    right.grid(alpha=0.3)
    return _png(fig)


PLOTS = (plot_joins, plot_push, plot_margins, plot_coverage, plot_resources, plot_faults)


KILL_ROWS = (
    ("node_killed", "node killed (index)"),
    ("killed_at_s", "killed at (s from t0)"),
    ("dead_node_candidates", "its candidates"),
    ("seats_lost", "seats lost"),
    ("seats_never_back", "never seated again"),
    ("seats_moved", "seated in another room"),
    ("left_before_back", "left on purpose before they were back"),
    ("left_before_back_max_s", "the longest any of them waited before it left (s)"),
    ("reseated_p50_s", "re-seated, p50 (s)"),
    ("reseated_max_s", "re-seated, max (s)"),
    ("kill_recovery_s", "all back and every room watched (s)"),
    ("slowest_reseats", "slowest re-seats: socket closed, hello again, seated (s from the kill)"),
    ("bystanders_dropped", "live nodes' users dropped"),
    ("bystanders", "who"),
)


BACKFILL_ROWS = (
    ("backfill_coverage", "coverage: lost recording back, candidates who stayed online"),
    ("backfill_coverage_churned", "coverage, candidates who lost their network and came back"),
    ("backfill_candidates_with_loss", "candidates with lost recording"),
    ("backfill_lost_s", "lost (s)"),
    ("backfill_recovered_s", "recovered (s)"),
    ("backfill_no_copy_s", "lost with no copy on the page: camera off (s)"),
    ("backfill_undecided_s", "recordings still undecided at the end (s)"),
    ("backfill_segments", "segments archived"),
    ("backfill_delay_p50_s", "delay, segment ready -> archived, p50 (s)"),
    ("backfill_delay_max_s", "delay, max (s)"),
    ("backfill_bytes", "bytes uploaded (PUT bodies, retries included)"),
    ("backfill_bytes_per_candidate_hour", "bytes per candidate-hour backfilled"),
    ("backfill_after_finish_p50_s", "archived after the candidate's finish, p50 (s)"),
    ("backfill_after_finish_max_s", "archived after the candidate's finish, max (s)"),
    ("backfill_done_after_exam_s", "last segment archived after the exam's end (s)"),
    ("backfill_short", "candidates short"),
)


def _table(title: str, data: dict[str, Any] | None, rows: tuple[tuple[str, str], ...]) -> str:
    if data is None:
        return ""
    cells = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{html.escape(str(data.get(key)))}</td></tr>"
        for key, label in rows
    )
    return f"<h2>{html.escape(title)}</h2><table>{cells}</table>"


def _goal_rows(checks: list[dict[str, Any]]) -> str:
    rows = []
    for c in checks:
        mark = "pass" if c["ok"] else "FAIL"
        rows.append(
            f"<tr class='{mark.lower()}'><td>{mark}</td><td>{html.escape(c['goal'])}</td>"
            f"<td>{html.escape(c['text'])}</td><td>{html.escape(c['why'])}</td></tr>"
        )
    return "\n".join(rows)


def write(report: dict[str, Any], path: Path) -> Path:
    images = []
    for plot in PLOTS:
        try:
            images.append(f"<img src='data:image/png;base64,{plot(report)}'>")
        except (KeyError, TypeError, ValueError) as exc:  # a missing series must not lose the report
            images.append(f"<p>{plot.__name__}: no data ({html.escape(str(exc))})</p>")
    figures = json.dumps(report["figures"], indent=1, default=str)
    kill_part = _table("node kill", report.get("node_kill"), KILL_ROWS)
    backfill_part = _table("browser backfill", report.get("backfill"), BACKFILL_ROWS)
    verdict = report["verdict"]
    color = "#1a7f37" if verdict["ok"] else "#cf222e"
    name = html.escape(report["scenario"]["name"])
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>proctorhub loadtest {html.escape(report["scenario"]["name"])}</title>
<style>body{{font:14px system-ui,sans-serif;margin:1.5em;max-width:1100px}} img{{max-width:49%}}
table{{border-collapse:collapse}} td{{border:1px solid #ccc;padding:2px 6px}} tr.fail td{{background:#ffebe9}}
pre{{background:#f6f8fa;padding:8px;font-size:11px;max-height:320px;overflow:auto}}</style></head><body>
<h1 style="color:{color}">{"PASS" if verdict["ok"] else "FAIL"}: {name}</h1>
<p>{html.escape(verdict["summary"])}</p>
<p>target: {html.escape(report["target"]["hub_url"])}; started {html.escape(report["started"])};
{report["scenario"]["candidates"]} candidates, {report["scenario"]["proctors"]} proctors,
exam {report["scenario"]["exam_s"]:g} s; tester {report["resources"].get("tester_note", "")}</p>
<table>{_goal_rows(verdict["checks"])}</table>
{kill_part}
{backfill_part}
{"".join(images)}
<h2>figures</h2><pre>{html.escape(figures)}</pre>
</body></html>"""
    path.write_text(page)
    return path
