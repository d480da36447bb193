"""Allocation under load: join storms and a proctor loss, measured from the clients' side.

    .venv/bin/python -m load_tests.benches.storm_bench storm --candidates 600 --over 1
    .venv/bin/python -m load_tests.benches.storm_bench storm --candidates 5000 --over 10 --nodes 2
    .venv/bin/python -m load_tests.benches.storm_bench storm --candidates 5000 --over 10 --rounds 5
    .venv/bin/python -m load_tests.benches.storm_bench loss --candidates 600 --proctors 40 --grace 5

`storm`: an event of room size 20 on each store of `--stores` in turn, in the same run (the memory
store on one node with its in-process 100ms simulator: the baseline; Redis on `--nodes` nodes with one
standalone simulator, the clients spread over the nodes as a load balancer would); the candidates
arrive evenly over `--over` seconds from worker processes; for each, the time from its `auth` frame
to its `room.assign`. Also the hubs' allocation passes and lock waits, and the CPU the hub nodes
used from the first arrival until 3 s after the last, per arrival (on a shared machine a steadier
figure than the latencies: the same work costs the same CPU whoever else is busy). `--rounds N` runs
the stores N times, alternating, and gives each round's p99 ratio to the first store and their median.
`loss`: candidates and proctors seated, then one proctor's socket is cut; the time until every
proctor that inherits its rooms has a `roster` holding them (grace included, and beyond it).
Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

from load_tests.benches.servers import start_cluster, start_hub
from load_tests.judge.stats import summary_ms
from load_tests.run.procs import RESULTS, cpu_s, kill, metrics_auth
from load_tests.users.worker_pool import GcPauses, raise_nofile
from server.auth import mint_session

API_KEY = "storm-api-key-" + "k" * 20
STORM_SETTLE_S = 3.0


def _token(secret: str, user: str, role: str, event: str) -> str:
    return mint_session(secret, user_id=user, event_id=event, role=role, now=time.time(), ttl_s=3600)  # type: ignore[arg-type]


async def _candidate(url: str, tok: str, start_at: float, hold_s: float, out: list[float]) -> None:
    await asyncio.sleep(max(0.0, start_at - time.time()))
    async with connect(url, compression=None, open_timeout=60) as ws:
        sent = time.time()
        await ws.send(json.dumps({"type": "auth", "data": {"token": tok}}))
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if message["type"] == "room.assign":
                out.append(time.time() - sent)
                await ws.send(json.dumps({"type": "ack", "data": {"id": message["id"]}}))
                break
        await asyncio.sleep(max(0.0, hold_s))


def _worker(urls: list[str], tokens: list[str], starts: list[float], hold_until: float, queue: Any) -> None:
    raise_nofile()
    pauses = GcPauses()
    # No collections while it measures: one walked every socket the worker held, up to 202 ms, and
    # the replies read meanwhile were timed late. A worker lives for one storm; its cycles can wait.
    gc.disable()

    async def run() -> list[float]:
        out: list[float] = []
        jobs = [
            _candidate(urls[i % len(urls)], t, s, hold_until - s, out)
            for i, (t, s) in enumerate(zip(tokens, starts, strict=True))
        ]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        errors = [repr(r) for r in results if isinstance(r, BaseException)]
        queue.put(
            {
                "latencies": out,
                "errors": errors[:5],
                "failed": len(errors),
                "gc_longest_ms": round(pauses.longest * 1000, 1),
            }
        )
        return out

    asyncio.run(run())


def _metrics(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", headers=metrics_auth(API_KEY), timeout=10).text
    wanted = ("proctorhub_allocation_passes_total", "proctorhub_allocation_lock_waits_total")
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line.startswith(wanted)}


def _hub(secret: str, name: str, extra: dict[str, str]) -> Any:
    RESULTS.mkdir(exist_ok=True)
    env = {"HUB_API_KEY": API_KEY, "HUB_RATE_PER_S": "100", "LOG_LEVEL": "WARNING", **extra}
    return start_hub(name, secret, RESULTS / f"{name}.log", extra_env=env)


def _event(port: int, event_id: str, **config: Any) -> None:
    body = {"event_id": event_id, "name": event_id, "room_size": 20, "proctor_load": 20, **config}
    answer = httpx.post(
        f"http://127.0.0.1:{port}/api/v1/events",
        json=body,
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    )
    answer.raise_for_status()


def _storm_on(args: argparse.Namespace, store: str) -> dict[str, Any]:
    secret = secrets.token_urlsafe(32)
    nodes = 1 if store == "memory" else args.nodes
    env = {"HUB_API_KEY": API_KEY, "HUB_RATE_PER_S": "100", "LOG_LEVEL": "WARNING"}
    cluster = start_cluster(
        f"storm-{args.candidates}", secret, RESULTS, store=store, nodes=nodes, extra_env=env
    )
    try:
        ports = [node.port for node in cluster.nodes]
        _event(ports[0], "storm", expected_candidates=args.candidates)
        time.sleep(2)  # the warm pool is made at creation, as in a real exam
        urls = [f"ws://127.0.0.1:{port}/ws" for port in ports]
        begin = time.time() + 2
        tokens = [_token(secret, f"c{i}", "candidate", "storm") for i in range(args.candidates)]
        starts = [begin + args.over * i / args.candidates for i in range(args.candidates)]
        hold_until = begin + args.over + 20
        queue: Any = multiprocessing.Queue()
        workers = [
            multiprocessing.Process(
                target=_worker,
                args=(urls, tokens[w :: args.workers], starts[w :: args.workers], hold_until, queue),
            )
            for w in range(args.workers)
        ]
        before = [_metrics(port) for port in ports]
        pids = [node.pid for node in cluster.nodes]
        cpu_before = sum(cpu_s(pid) for pid in pids)
        for w in workers:
            w.start()
        # The storm's window: the arrivals and the settling second after them (the hold goes on).
        time.sleep(max(0.0, begin + args.over + STORM_SETTLE_S - time.time()))
        storm_cpu = sum(cpu_s(pid) for pid in pids) - cpu_before
        parts = [queue.get(timeout=args.over + 120) for _ in workers]
        after = [_metrics(port) for port in ports]
        for w in workers:
            w.join(timeout=30)
        latencies = [x for p in parts for x in p["latencies"]]
        passes: dict[str, float] = {}
        for b, a in zip(before, after, strict=True):
            for k in a:
                passes[k] = passes.get(k, 0) + a[k] - b.get(k, 0)
        return {
            "store": store,
            "nodes": nodes,
            "assigned": len(latencies),
            "failed": sum(p["failed"] for p in parts),
            "errors": [e for p in parts for e in p["errors"]][:5],
            "auth_to_room_assign_ms": summary_ms(latencies),
            "hub_cpu_ms_per_arrival": round(storm_cpu * 1000 / args.candidates, 3),
            "client_gc_longest_ms": max(p["gc_longest_ms"] for p in parts),
            "passes": passes,
        }
    finally:
        cluster.stop()


def p99_ratios(runs: list[dict[str, Any]], stores: list[str]) -> dict[str, Any]:
    """Each round's p99 on every store after the first over the first's (rounds run the stores in
    order, back to back), and their median: one storm's p99 moves with whatever else the machine ran
    in its few seconds, so a ratio is quoted over rounds."""
    rounds = [runs[i : i + len(stores)] for i in range(0, len(runs), len(stores))]
    out: dict[str, Any] = {}
    for store in stores[1:]:
        ratios = []
        for round_ in rounds:
            base = round_[0]["auth_to_room_assign_ms"].get("p99_ms")
            other = next(r for r in round_ if r["store"] == store)["auth_to_room_assign_ms"].get("p99_ms")
            if base and other is not None:
                ratios.append(round(other / base, 2))
        out[f"{store}_over_{stores[0]}"] = {
            "rounds": ratios,
            "median": statistics.median(ratios) if ratios else None,
        }
    return out


def storm(args: argparse.Namespace) -> dict[str, Any]:
    stores = args.stores.split(",")
    runs = [_storm_on(args, store) for _ in range(args.rounds) for store in stores]
    for run in runs:
        ms = run["auth_to_room_assign_ms"]
        print(
            f"{run['store']:>6} x{run['nodes']}: {run['assigned']}/{args.candidates} assigned, "
            f"p50 {ms.get('p50_ms')} ms, p99 {ms.get('p99_ms')} ms, max {ms.get('max_ms')} ms, "
            f"failed {run['failed']}, hub CPU {run['hub_cpu_ms_per_arrival']} ms per arrival",
            file=sys.stderr,
        )
    result = {"scenario": "storm", "candidates": args.candidates, "over_s": args.over, "runs": runs}
    if len(stores) > 1:
        result["p99_ratio"] = p99_ratios(runs, stores)
        print(f"p99 ratio: {result['p99_ratio']}", file=sys.stderr)
    return result


async def _loss(url: str, secret: str, candidates: int, proctors: int, grace: float) -> dict[str, Any]:
    rosters: dict[str, tuple[float, set[str]]] = {}
    rooms: dict[str, set[str]] = {}
    sockets = {}

    async def proctor(pid: str) -> None:
        ws = await connect(url, compression=None, open_timeout=60)
        sockets[pid] = ws
        await ws.send(json.dumps({"type": "auth", "data": {"token": _token(secret, pid, "proctor", "loss")}}))
        async for raw in ws:
            message = json.loads(raw)
            if message["type"] == "room.assign":
                rooms[pid] = {r["room_id"] for r in message["data"]["rooms"]}
            elif message["type"] == "roster":
                rosters[pid] = (time.time(), {c["room_id"] for c in message["data"]["candidates"]})

    tasks = [asyncio.create_task(proctor(f"p{i}")) for i in range(proctors)]
    seats = []
    for i in range(candidates):
        ws = await connect(url, compression=None, open_timeout=60)
        await ws.send(
            json.dumps({"type": "auth", "data": {"token": _token(secret, f"c{i}", "candidate", "loss")}})
        )
        seats.append(ws)
    await asyncio.sleep(5)
    victim = next(p for p, held in rooms.items() if held)
    lost = set(rooms[victim])
    cut = time.time()
    tasks[int(victim[1:])].cancel()
    sockets[victim].transport.abort()

    def inherited() -> bool:
        heirs = [p for p, held in rooms.items() if p != victim and held & lost]
        covered = set().union(*(rooms[p] & lost for p in heirs)) if heirs else set()
        return covered == lost and all(rosters.get(p, (0, set()))[0] > cut for p in heirs)

    while not inherited() and time.time() - cut < grace + 30:
        await asyncio.sleep(0.01)
    done = time.time() - cut
    for task in tasks:
        task.cancel()
    for ws in seats:
        await ws.close()
    return {
        "scenario": "loss",
        "candidates": candidates,
        "proctors": proctors,
        "grace_s": grace,
        "rooms_lost": len(lost),
        "rosters_after_s": round(done, 3),
        "beyond_grace_s": round(done - grace, 3),
        "complete": inherited(),
    }


def loss(args: argparse.Namespace) -> dict[str, Any]:
    secret = secrets.token_urlsafe(32)
    hub = _hub(secret, "loss", {"HUB_PRESENCE_GRACE_S": str(args.grace)})
    try:
        _event(hub.port, "loss", expected_candidates=args.candidates)
        return asyncio.run(
            _loss(f"ws://127.0.0.1:{hub.port}/ws", secret, args.candidates, args.proctors, args.grace)
        )
    finally:
        kill(hub.proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m load_tests.benches.storm_bench", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="scenario", required=True)
    s = sub.add_parser("storm", help="candidates arrive over --over seconds: auth -> room.assign")
    s.add_argument("--candidates", type=int, default=600)
    s.add_argument("--over", type=float, default=1.0)
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--stores", default="memory,redis", help="stores to run on, in this order (memory,redis)")
    s.add_argument("--nodes", type=int, default=1, help="hub nodes on Redis (the memory store runs one)")
    s.add_argument("--rounds", type=int, default=1, help="run every store this many times, alternating")
    s.set_defaults(run=storm)
    lo = sub.add_parser("loss", help="proctors go: time until their rooms have another")
    lo.add_argument("--candidates", type=int, default=600)
    lo.add_argument("--proctors", type=int, default=40)
    lo.add_argument("--grace", type=float, default=5.0)
    lo.set_defaults(run=loss)
    args = parser.parse_args(argv)
    result = args.run(args)
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    path = Path(RESULTS) / f"{args.scenario}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
