"""Hub transport bench, run by hand: `python -m load_tests.benches.hub_bench <scenario> [options]`.

Scenarios (see load_tests/README.md): `idle` (N authenticated sockets held: connect time,
RSS per socket, drops), `presence` (one candidate connects/disconnects; latency to each
of the event's admins), `broadcast` (one candidate's video toggles; time to the last of N watchers),
`tokens` (N candidates hold sockets while the hub pushes `token.refresh`; they ack at once).
The hub always runs on the memory store (one node, its in-process 100ms simulator): the baseline.
`--redis` runs the same scenario again, in the same invocation, on `--nodes` nodes sharing one
redis-server and one standalone simulator, and prints redis/memory for each figure; `--baseline`
also runs it against load_tests/benches/bare_server.py and prints memory/bare.

Everything stays on 127.0.0.1; each target run has a hard timeout, a watchdog ends the whole
invocation if that fails, and every child process is killed on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import sys
import threading
import time
from typing import Any, NoReturn

from load_tests.benches import output, servers
from load_tests.benches.held_sockets import worker_main
from load_tests.benches.hub_scenarios import SCENARIOS as BASE_SCENARIOS
from load_tests.benches.hub_scenarios import Options, Target
from load_tests.benches.hub_tokens import tokens
from load_tests.run import procs
from load_tests.users.worker_pool import WorkerPool, raise_nofile

SCENARIOS = {**BASE_SCENARIOS, "tokens": tokens}
DEFAULT_HOLD_S = {"idle": 30.0, "tokens": 300.0}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m load_tests.benches.hub_bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--sockets", type=int, default=10_000, help="idle, tokens: sockets to hold")
    parser.add_argument("--proctors", type=int, default=100, help="presence: watchers (the event's admins)")
    parser.add_argument("--watchers", type=int, default=5_000, help="broadcast: watcher sockets")
    parser.add_argument(
        "--role",
        choices=("admin", "proctor", "mixed"),
        default="admin",
        help="broadcast: watcher role (mixed = alternate proctor/admin)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="presence: connect/close rounds (200); broadcast: video toggles (20)",
    )
    parser.add_argument(
        "--interval", type=float, default=None, help="seconds between actions (presence 0.1, broadcast 1.0)"
    )
    parser.add_argument(
        "--hold", type=float, default=None, help="idle (30), tokens (300): seconds to hold the sockets"
    )
    parser.add_argument("--ttl", type=int, default=60, help="tokens: the event's token_ttl_s (10..86400)")
    parser.add_argument("--room-size", type=int, default=100, help="tokens: the event's room_size (1..100)")
    parser.add_argument("--workers", type=int, default=2, help="client worker processes")
    parser.add_argument("--concurrency", type=int, default=128, help="handshakes in flight per worker")
    parser.add_argument(
        "--nodes", type=int, default=1, help="hub nodes of the Redis run (more than 1 needs --redis)"
    )
    parser.add_argument(
        "--redis",
        action="store_true",
        help="after the memory store, run again on redis-server with --nodes nodes",
    )
    parser.add_argument("--baseline", action="store_true", help="also run against the bare websockets server")
    parser.add_argument(
        "--hub-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the hub processes, for diagnosis (repeatable)",
    )
    parser.add_argument(
        "--hub-commit",
        metavar="REV",
        help="run the hub from this git commit (extracted with git archive) instead of the working tree",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="hard limit per target run, seconds (180; tokens: hold + 300)",
    )
    args = parser.parse_args(argv)
    if args.hold is None:
        args.hold = DEFAULT_HOLD_S.get(args.scenario, 30.0)
    if args.timeout is None:
        args.timeout = args.hold + 300.0 if args.scenario == "tokens" else 180.0
    if args.scenario == "tokens" and (args.baseline or args.nodes > 1):
        parser.error("tokens runs on one hub node and has no bare baseline (the bare server has no tokens)")
    if not 10 <= args.ttl <= 86_400 or not 1 <= args.room_size <= 100:
        parser.error("--ttl must be 10..86400 and --room-size 1..100 (the hub's limits)")
    if args.nodes > 1 and not args.redis:
        parser.error("--nodes above 1 needs --redis (nodes share state through Redis)")
    if any("=" not in item for item in args.hub_env):
        parser.error("--hub-env takes NAME=VALUE")
    if args.nodes < 1 or args.workers < 1:
        parser.error("--nodes and --workers must be at least 1")
    return args


def _options(args: argparse.Namespace) -> Options:
    return Options(
        sockets=args.sockets,
        proctors=args.proctors,
        watchers=args.watchers,
        role=args.role,
        rounds=args.rounds,
        interval_s=args.interval,
        hold_s=args.hold,
        concurrency=args.concurrency,
        timeout_s=args.timeout,
        token_ttl_s=args.ttl,
        room_size=args.room_size,
    )


def _start_target(kind: str, args: argparse.Namespace, run_id: str, secret: str) -> Target:
    if kind == "bare":
        server = servers.start_bare(secret, procs.RESULTS / f"{run_id}-bare.log")
        notes = ["baseline is one bare websockets process"] if args.nodes > 1 else []
        return Target("bare", [server], secret, notes=notes)
    api_key = secrets.token_urlsafe(24) if args.scenario == "tokens" else None
    extra_env = dict(item.split("=", 1) for item in args.hub_env)
    if api_key:
        extra_env["HUB_API_KEY"] = api_key
    nodes = args.nodes if kind == "redis" else 1
    cluster = servers.start_cluster(
        f"{run_id}-hub",
        secret,
        procs.RESULTS,
        store=kind,
        nodes=nodes,
        extra_env=extra_env,
        root=args.hub_root,
    )
    notes = [f"hub environment adds {' '.join(args.hub_env)}"] if args.hub_env else []
    return Target(
        "hub",
        cluster.nodes,
        secret,
        redis=cluster.redis,
        simulator=cluster.simulator,
        notes=notes,
        api_key=api_key,
    )


class _CpuMeter:
    """CPU used during a run by the bench's own processes and by everything else on the machine."""

    def __init__(self, target: Target, pool: WorkerPool) -> None:
        pids = [s.pid for s in target.servers] + pool.pids + [os.getpid()]
        if target.redis is not None:
            pids.append(target.redis.proc.pid)
        if target.simulator is not None:
            pids.append(target.simulator.pid)
        self.pids = pids
        self.started = time.monotonic()
        self.machine = procs.machine_busy_s()
        self.ours = sum(procs.cpu_s(pid) for pid in pids)
        self.servers = target.cpu_s()
        self.target = target

    def read(self) -> dict[str, float]:
        wall = max(time.monotonic() - self.started, 1e-9)
        machine = procs.machine_busy_s() - self.machine
        ours = sum(procs.cpu_s(pid) for pid in self.pids) - self.ours
        return {
            "wall_s": round(wall, 1),
            "machine_cores": round(machine / wall, 2),
            "servers_cores": round((self.target.cpu_s() - self.servers) / wall, 2),
            "bench_cores": round(ours / wall, 2),
            "other_processes_cores": round(max(machine - ours, 0.0) / wall, 2),
        }


def _stop_target(target: Target) -> dict[str, Any]:
    """Stop every process of a target; what their logs and exit codes say."""
    out: dict[str, Any] = {}
    for server in target.servers:
        exit_code = server.stop()
        count, first = server.log_problems()
        out[server.name] = {
            "exit_code": exit_code,
            "log": str(server.log_path),
            "log_problem_lines": count,
            "first_problems": first,
        }
        if count:
            target.notes.append(f"{server.name}: {count} WARNING/ERROR lines in {server.log_path}")
    if target.simulator is not None:
        target.simulator.stop()
    if target.redis is not None:
        target.redis.stop()
    return out


async def _run(args: argparse.Namespace, run_id: str) -> dict[str, dict[str, Any]]:
    secret = secrets.token_urlsafe(32)
    scenario = SCENARIOS[args.scenario]
    opts = _options(args)
    kinds = ["memory"] + (["redis"] if args.redis else []) + (["bare"] if args.baseline else [])
    runs: dict[str, dict[str, Any]] = {}
    pool = WorkerPool(args.workers, worker_main, "bench-worker")
    try:
        for kind in kinds:
            await pool.each("status", [{} for _ in range(len(pool))], timeout=60)
            print(f"[{time.strftime('%H:%M:%S')}] {args.scenario}: {kind} ...", file=sys.stderr, flush=True)
            try:
                target = _start_target(kind, args, run_id, secret)
            except (RuntimeError, OSError) as exc:
                procs.kill_all()
                runs[kind] = {"figures": {}, "error": f"could not start: {exc}"[:4000], "notes": []}
                continue
            run: dict[str, Any] = {"nodes": [s.url for s in target.servers]}
            meter = _CpuMeter(target, pool)
            try:
                async with asyncio.timeout(args.timeout):
                    run["figures"], run["details"] = await scenario(target, pool, opts)
                run["cpu"] = meter.read()
                if run["cpu"]["other_processes_cores"] > 0.1:
                    target.notes.append(
                        f"other processes on this machine used {run['cpu']['other_processes_cores']:.2f}"
                        " cores on average during the run (noise)"
                    )
            except Exception as exc:  # a timeout or a failure: report it, start clean for the next
                reason = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
                run["figures"], run["error"] = {}, reason
                run["at_failure"] = {"server_metrics": target.metrics(), "server_rss_kib": target.rss_kib()}
                run["cpu"] = meter.read()
                target.notes.append(f"run failed: {reason}")
                pool.stop()
                pool = WorkerPool(args.workers, worker_main, "bench-worker")
            finally:
                run["processes"] = _stop_target(target)
                run["notes"] = target.notes
            runs[kind] = run
    finally:
        pool.stop()
    return runs


def _figures(runs: dict[str, dict[str, Any]], kind: str) -> dict[str, Any]:
    return runs.get(kind, {}).get("figures", {})


def _watchdog(seconds: float) -> None:
    def fire() -> NoReturn:
        print(f"hub_bench: watchdog fired after {seconds:.0f}s; killing everything", file=sys.stderr)
        procs.kill_all()
        os._exit(3)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.hub_commit:  # pinned to the full id, so a moving HEAD cannot change it mid-run
        args.hub_commit = servers.resolve_commit(args.hub_commit)
    args.hub_root = servers.snapshot(args.hub_commit) if args.hub_commit else procs.ROOT
    soft, hard = raise_nofile()
    needed = max(args.sockets if args.scenario in ("idle", "tokens") else args.watchers, args.proctors) + 256
    if soft < needed:
        print(f"hub_bench: RLIMIT_NOFILE is {soft} (hard {hard}); {needed} wanted", file=sys.stderr)
    run_id = f"{args.scenario}-{time.strftime('%Y%m%d-%H%M%S')}"
    _watchdog(args.timeout * (1 + args.redis + args.baseline) + 120)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.time()
    try:
        runs = asyncio.run(_run(args, run_id))
    finally:
        procs.kill_all()
    payload = {
        "run_id": run_id,
        "scenario": args.scenario,
        "args": vars(args),
        "nofile": [soft, hard],
        "environment": output.environment(),
        "hub_source": f"commit {args.hub_commit} ({args.hub_root})" if args.hub_commit else "working tree",
        "wall_s": round(time.time() - started, 1),
        "runs": runs,
        "redis_over_memory": output.ratios(_figures(runs, "redis"), _figures(runs, "memory"))
        if "redis" in runs
        else None,
        "hub_over_bare": output.ratios(_figures(runs, "memory"), _figures(runs, "bare"))
        if "bare" in runs
        else None,
    }
    path = output.write_json(run_id, payload)
    source = f"hub at {args.hub_commit}" if args.hub_commit else "hub from the working tree"
    setting = f"redis nodes={args.nodes if args.redis else 0} workers={args.workers}, {source}"
    print(output.table(f"{args.scenario} ({setting})", runs))
    for kind, run in runs.items():
        if run.get("error"):
            print(f"{kind}: {run['error']}")
            for node, samples in run.get("at_failure", {}).get("server_metrics", {}).items():
                print(f"  {node} at that moment: {samples}")
    print(f"results: {path}")
    return 1 if any(run.get("error") for run in runs.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
