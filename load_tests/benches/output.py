"""The bench's output: a table on stdout and a JSON file under load_tests/results/."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from load_tests.run.procs import RESULTS, ROOT

# The bare server stamps one broadcast once; the hub stamps every socket's frame: not comparable to it.
NO_RATIO = frozenset({"server_stamp_last_p50_ms"})


def ratio(hub: object, bare: object) -> float | None:
    """hub / bare for two positive finite numbers, else None."""
    if not isinstance(hub, int | float) or not isinstance(bare, int | float):
        return None
    if not (math.isfinite(hub) and math.isfinite(bare)) or bare <= 0:
        return None
    return round(hub / bare, 2)


def ratios(hub: dict[str, Any], bare: dict[str, Any]) -> dict[str, float | None]:
    return {key: ratio(value, bare.get(key)) for key, value in hub.items() if key not in NO_RATIO}


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(title: str, runs: dict[str, dict[str, Any]]) -> str:
    """One row per figure; a column per run (memory, then redis and bare if run), with redis/memory
    and memory/bare beside them."""
    memory = runs.get("memory", {}).get("figures", {})
    compared = [("redis", "redis/memory"), ("bare", "memory/bare")]
    shown = [(kind, label) for kind, label in compared if kind in runs]
    keys = list(memory) or [k for kind, _ in shown for k in runs[kind].get("figures", {})]
    header = ["figure", "memory"] + [c for kind, label in shown for c in (kind, label)]
    rows = [header]
    for key in dict.fromkeys(keys):
        row = [key, _cell(memory.get(key))]
        for kind, _ in shown:
            other = runs[kind].get("figures", {}).get(key)
            pair = (other, memory.get(key)) if kind == "redis" else (memory.get(key), other)
            row += [_cell(other), _cell(None if key in NO_RATIO else ratio(*pair))]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [title, "-" * len(title)]
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    for kind, run in runs.items():
        for note in run.get("notes", []):
            lines.append(f"note ({kind}): {note}")
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "-"

    def git(*argv: str) -> str:
        try:
            return subprocess.run(
                ["git", *argv], cwd=ROOT, capture_output=True, text=True, timeout=5, check=False
            ).stdout.strip()
        except OSError:
            return "-"

    dirty = [line[3:] for line in git("status", "--porcelain", "server").splitlines()]
    with open("/proc/cpuinfo") as cpuinfo:
        model = next(
            (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "-"
        )
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "websockets": version("websockets"),
        "uvicorn": version("uvicorn"),
        "git_head": git("rev-parse", "--short", "HEAD"),
        "working_tree_server_changes": dirty,
    }


def write_json(run_id: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{run_id}.json"
    path.write_text(json.dumps(payload, indent=2, default=str, allow_nan=True))
    return path
