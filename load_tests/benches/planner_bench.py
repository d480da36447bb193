"""Planner bench, run by hand: `.venv/bin/python -m load_tests.benches.planner_bench [options]`.

Times the pure allocation planner on the issue's state (20,000 candidates, 2,000 proctors,
2,000 rooms by default) in this process; no server is started. Figures, median of `--runs`:

- `full_cold_ms`: `plan` seats 20,000 unseated online candidates in empty rooms and gives every
  room its proctors (the worst full rebalance: everything is new);
- `full_steady_ms`: `plan` on that state once applied (an empty plan: the cost of a periodic pass);
- `full_proctor_loss_ms`: `plan` after 10 % of the proctors went offline (their rooms handed over);
- `join_ms`: `place_joins` of one new candidate into the steady state (a watched room with space);
- `join_opening_room_ms`: `place_joins` of one candidate that opens a warm room (proctor included);
- `full_one_join_ms`: `plan` with that one new candidate instead (the slow way to seat one).

Prints a table and writes `load_tests/results/planner-<time>.json` (gitignored).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from load_tests.benches import output
from server.allocation.planner import (
    CandidateState,
    Capacity,
    EventState,
    Plan,
    ProctorState,
    RoomState,
    apply,
    place_joins,
    plan,
)

TARGETS_MS = {"full_cold_ms": 100.0, "join_ms": 1.0}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m load_tests.benches.planner_bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--candidates", type=int, default=20_000)
    parser.add_argument("--proctors", type=int, default=2_000)
    parser.add_argument("--rooms", type=int, default=2_000)
    parser.add_argument("--room-size", type=int, default=12, help="N (12: 1,667 rooms used, the rest warm)")
    parser.add_argument("--per-room", type=int, default=2, help="M")
    parser.add_argument("--load", type=int, default=24, help="L")
    parser.add_argument("--runs", type=int, default=7, help="runs per full-plan figure (median)")
    parser.add_argument("--join-runs", type=int, default=201, help="runs per join figure (median)")
    return parser.parse_args(argv)


def cold_state(args: argparse.Namespace) -> EventState:
    cap = Capacity(
        room_size=args.room_size,
        proctors_per_room=args.per_room,
        proctor_load=args.load,
        expected_candidates=args.candidates,
    )
    return EventState.build(
        cap,
        (RoomState(f"room-{i:05d}") for i in range(args.rooms)),
        (CandidateState(f"cand-{i:06d}") for i in range(args.candidates)),
        (ProctorState(f"proc-{i:05d}") for i in range(args.proctors)),
        now=1_000.0,
    )


def with_joiner(state: EventState, cid: str) -> EventState:
    return replace(state, candidates={**state.candidates, cid: CandidateState(cid)})


def timed(fn: Callable[[], Plan], runs: int) -> tuple[dict[str, float], Plan]:
    """Median, min and max in ms; one warm-up call first, and a collection before each run."""
    result = fn()
    samples = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter_ns()
        result = fn()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}, result


def fill_partial_rooms(state: EventState) -> EventState:
    """Seat joiners until the next one must open a warm room."""
    n, k = state.capacity.room_size, 0
    while True:
        if all(len(r.candidates) in (0, n) for r in state.rooms if r.open):
            return state
        cid = f"fill-{k}"
        k += 1
        state = with_joiner(state, cid)
        state = apply(state, place_joins(state, [cid]))


def measure(args: argparse.Namespace) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    figures: dict[str, dict[str, float]] = {}
    cold = cold_state(args)
    figures["full_cold_ms"], first = timed(lambda: plan(cold), args.runs)
    steady = apply(cold, first)
    figures["full_steady_ms"], again = timed(lambda: plan(steady), args.runs)
    gone = dict(steady.proctors)
    for pid in list(gone)[::10]:
        gone[pid] = ProctorState(pid, "offline")
    lossy = replace(steady, proctors=gone)
    figures["full_proctor_loss_ms"], loss = timed(lambda: plan(lossy), args.runs)
    joined = with_joiner(steady, "joiner")
    figures["join_ms"], join = timed(lambda: place_joins(joined, ["joiner"]), args.join_runs)
    full = with_joiner(fill_partial_rooms(steady), "opener")
    figures["join_opening_room_ms"], opening = timed(lambda: place_joins(full, ["opener"]), args.join_runs)
    figures["full_one_join_ms"], _ = timed(lambda: plan(joined), args.runs)
    facts = {
        "cold_placements": len(first.placements),
        "cold_proctors_assigned": len(first.proctor_rooms),
        "cold_shortage": str(first.shortage),
        "rooms_used": sum(1 for r in steady.rooms if r.candidates),
        "steady_plan_is_empty": again.is_empty,
        "proctor_loss_changes": len(loss.proctor_rooms),
        "join_placement": join.placements,
        "opening_placement": opening.placements,
        "opening_proctor_rooms": {p: sorted(r) for p, r in opening.proctor_rooms.items()},
    }
    return figures, facts


def table(figures: dict[str, dict[str, float]]) -> str:
    rows = [("figure", "median ms", "min ms", "max ms", "target ms")]
    for name, f in figures.items():
        target = TARGETS_MS.get(name)
        rows.append(
            (
                name,
                f"{f['median']:.3f}",
                f"{f['min']:.3f}",
                f"{f['max']:.3f}",
                f"{target:g}" if target else "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for k, row in enumerate(rows):
        lines.append(
            "  ".join(
                [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
            )
        )
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    figures, facts = measure(args)
    title = (
        f"planner: {args.candidates:,} candidates, {args.proctors:,} proctors, {args.rooms:,} rooms "
        f"(N={args.room_size}, M={args.per_room}, L={args.load})"
    )
    print(title, "-" * len(title), table(figures), sep="\n")
    for key, value in facts.items():
        print(f"  {key}: {value}")
    run_id = time.strftime("planner-%Y%m%d-%H%M%S")
    path = output.write_json(
        run_id,
        {
            "scenario": "planner",
            "options": vars(args),
            "figures": figures,
            "facts": facts,
            "environment": output.environment(),
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
