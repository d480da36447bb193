"""The storm bench's p99 ratio over rounds: each round against its own baseline, then the median."""

from __future__ import annotations

from typing import Any

from load_tests.benches.storm_bench import p99_ratios


def _run(store: str, p99: float | None) -> dict[str, Any]:
    return {"store": store, "auth_to_room_assign_ms": {} if p99 is None else {"p99_ms": p99}}


def test_each_round_is_divided_by_its_own_baseline() -> None:
    runs = [
        _run("memory", 10),
        _run("redis", 15),
        _run("memory", 5),
        _run("redis", 20),
        _run("memory", 8),
        _run("redis", 8),
    ]
    assert p99_ratios(runs, ["memory", "redis"]) == {
        "redis_over_memory": {"rounds": [1.5, 4.0, 1.0], "median": 1.5}
    }


def test_a_round_without_figures_is_left_out() -> None:
    runs = [_run("memory", None), _run("redis", 15), _run("memory", 10), _run("redis", 12)]
    assert p99_ratios(runs, ["memory", "redis"]) == {"redis_over_memory": {"rounds": [1.2], "median": 1.2}}
