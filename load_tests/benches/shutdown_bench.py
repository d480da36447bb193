"""SIGTERM to a Redis node in the middle of a join storm: does it go in time, and is anything lost?

    .venv/bin/python -m load_tests.benches.shutdown_bench --candidates 2000 --over 10
    proctorhub loadtest shutdown --candidates 5000 --over 10

Two hub nodes on one redis-server and one standalone 100ms simulator (`start_cluster`). `--candidates`
arrive evenly over `--over` seconds from worker processes, alternately on node 1 and node 2 (a load
balancer's round robin). At `--term-at` x `--over` seconds into the storm node 1 gets SIGTERM. A
candidate whose socket closes, or whose node refuses it, logs in again on node 2 (as its client would
through the balancer) and waits for its `room.assign` there.

Figures:
- `exit_after_s`: from SIGTERM until node 1's process is gone (goal: at most HUB_SHUTDOWN_S);
  `exit_code`; a node still alive after HUB_SHUTDOWN_S + `--margin` is SIGKILLed and said so;
- `close_codes`: the close codes node 1's clients saw (1012 is the drain);
- `seats_kept`: every candidate told a room before SIGTERM still sits in that room in the store
  (GET /api/v1/events/{id}/rooms on node 2) once everyone is back; `seats_moved`, `unseated` count
  the others, and `everyone_seated` says whether all `--candidates` have a seat at the end;
- `node1_log`: WARNING/ERROR/Traceback lines in node 1's log (count and the first few).

Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import secrets
import sys
import time
from collections import Counter
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from load_tests.benches.servers import start_cluster
from load_tests.benches.storm_bench import API_KEY, _event, _token
from load_tests.judge.stats import summary_ms
from load_tests.run.procs import RESULTS
from load_tests.users.worker_pool import raise_nofile

EVENT = "shutdown"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


async def _seated(url: str, tok: str) -> tuple[Any, str, float]:
    """Log in on `url` and wait for the room; the socket, the room and when it was told."""
    ws = await connect(url, compression=None, open_timeout=30)
    sent = time.time()
    await ws.send(json.dumps({"type": "auth", "data": {"token": tok}}))
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 60))
        if message["type"] == "room.assign":
            await ws.send(json.dumps({"type": "ack", "data": {"id": message["id"]}}))
            return ws, message["data"]["room_id"], time.time() - sent


async def _candidate(
    urls: list[str], first: int, tok: str, start_at: float, hold_until: float
) -> dict[str, Any]:
    """One candidate: its node, rooms told (with when), close codes seen, errors."""
    await asyncio.sleep(max(0.0, start_at - time.time()))
    out: dict[str, Any] = {"first_node": first, "rooms": [], "closes": [], "errors": []}
    at = first
    while time.time() < hold_until:
        try:
            ws, room, took = await _seated(urls[at], tok)
        except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as exc:
            out["errors"].append(f"node {at + 1}: {exc!r}"[:200])
            at = len(urls) - 1  # the balancer takes the dead node out: the last node is the live one
            await asyncio.sleep(random.uniform(0.05, 0.5))
            continue
        out["rooms"].append((time.time(), room, at, took))
        try:
            await asyncio.wait_for(ws.wait_closed(), max(0.0, hold_until - time.time()))
        except TimeoutError:
            await ws.close()
            return out
        out["closes"].append(ws.close_code)
        at = len(urls) - 1
        await asyncio.sleep(random.uniform(0.05, 0.5))  # clients back off before reconnecting
    return out


def _worker(urls: list[str], jobs: list[tuple[str, int, str, float]], hold_until: float, queue: Any) -> None:
    raise_nofile()

    async def run() -> None:
        results = await asyncio.gather(
            *(_candidate(urls, first, tok, start, hold_until) for _, first, tok, start in jobs),
            return_exceptions=True,
        )
        part = {}
        for (user, *_), result in zip(jobs, results, strict=True):
            part[user] = (
                result if isinstance(result, dict) else {"rooms": [], "closes": [], "errors": [repr(result)]}
            )
        queue.put(part)

    asyncio.run(run())


def _store_seats(http: str) -> dict[str, str]:
    answer = httpx.get(f"{http}/api/v1/events/{EVENT}/rooms", headers=AUTH, timeout=30)
    answer.raise_for_status()
    return {c: r["room_id"] for r in answer.json()["rooms"] for c in r["candidates"]}


def _verdict(results: dict[str, dict[str, Any]], term_at: float, seats: dict[str, str]) -> dict[str, Any]:
    """Seats told before SIGTERM against the store's seats after; close codes of node 1's sockets."""
    told_before = {
        user: r["rooms"][0][1] for user, r in results.items() if r["rooms"] and r["rooms"][0][0] < term_at
    }
    moved = sorted(u for u, room in told_before.items() if seats.get(u) not in (None, room))
    lost = sorted(u for u in told_before if u not in seats)
    codes = Counter(code for r in results.values() if r.get("first_node") == 0 for code in r["closes"])
    errors = [e for r in results.values() for e in r["errors"]]
    told_twice = sorted(u for u, r in results.items() if len({room for _, room, *_ in r["rooms"]}) > 1)
    return {
        "told_before_sigterm": len(told_before),
        "seats_kept": len(told_before) - len(moved) - len(lost),
        "seats_moved": len(moved),
        "seats_lost": len(lost),
        "examples_moved_or_lost": (moved + lost)[:5],
        "told_two_rooms": len(told_twice),
        "seated_in_store": len(seats),
        "everyone_seated": len(seats) == len(results) and all(r["rooms"] for r in results.values()),
        "close_codes_node1": {str(k): v for k, v in sorted(codes.items(), key=lambda kv: str(kv[0]))},
        "login_errors": len(errors),
        "login_error_examples": sorted(Counter(e.split(":", 2)[-1][:80] for e in errors).items())[:5],
        "rejoin_ms": summary_ms([r["rooms"][1][3] for r in results.values() if len(r["rooms"]) > 1]),
    }


def shutdown(args: argparse.Namespace) -> dict[str, Any]:
    secret = secrets.token_urlsafe(32)
    env = {
        "HUB_API_KEY": API_KEY,
        "HUB_RATE_PER_S": "100",
        "LOG_LEVEL": "INFO",
        "HUB_SHUTDOWN_S": str(args.shutdown_s),
        "HUB_PRESENCE_GRACE_S": str(args.grace),
    }
    cluster = start_cluster(
        f"shutdown-{args.candidates}", secret, RESULTS, store="redis", nodes=2, extra_env=env
    )
    node1, node2 = cluster.nodes
    try:
        _event(node1.port, EVENT, expected_candidates=args.candidates)
        time.sleep(2)  # the warm pool is made at creation, as in a real exam
        urls = [node1.url, node2.url]
        begin = time.time() + 2
        jobs = [
            (
                f"c{i}",
                i % 2,
                _token(secret, f"c{i}", "candidate", EVENT),
                begin + args.over * i / args.candidates,
            )
            for i in range(args.candidates)
        ]
        hold_until = begin + args.over + args.shutdown_s + args.settle
        queue: Any = multiprocessing.Queue()
        workers = [
            multiprocessing.Process(target=_worker, args=(urls, jobs[w :: args.workers], hold_until, queue))
            for w in range(args.workers)
        ]
        for w in workers:
            w.start()
        time.sleep(max(0.0, begin + args.over * args.term_at - time.time()))
        term_at = time.time()
        node1.proc.terminate()
        limit = args.shutdown_s + args.margin
        while node1.proc.poll() is None and time.time() - term_at < limit:
            time.sleep(0.01)
        exit_after = time.time() - term_at
        killed = node1.proc.poll() is None
        if killed:
            node1.proc.kill()
            node1.proc.wait()
        results: dict[str, dict[str, Any]] = {}
        for _ in workers:
            results |= queue.get(timeout=hold_until - time.time() + 120)
        for w in workers:
            w.join(timeout=30)
        seats = _store_seats(node2.http)
        problems, examples = node1.log_problems()
        return {
            "scenario": "shutdown",
            "candidates": args.candidates,
            "over_s": args.over,
            "sigterm_at_s": round(term_at - begin, 2),
            "hub_shutdown_s": args.shutdown_s,
            "exit_after_s": round(exit_after, 3),
            "exit_code": node1.proc.returncode,
            "sigkilled_after_margin": killed,
            "within_hub_shutdown_s": not killed and exit_after <= args.shutdown_s,
            **_verdict(results, term_at, seats),
            "node1_log_problems": problems,
            "node1_log_examples": examples,
            "node1_log": str(node1.log_path),
        }
    finally:
        cluster.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m load_tests.benches.shutdown_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--candidates", type=int, default=5000)
    parser.add_argument("--over", type=float, default=10.0, help="seconds over which they arrive")
    parser.add_argument("--term-at", type=float, default=0.5, help="SIGTERM at this fraction of --over")
    parser.add_argument("--shutdown-s", type=float, default=20.0, help="HUB_SHUTDOWN_S of the nodes")
    parser.add_argument("--grace", type=float, default=30.0, help="HUB_PRESENCE_GRACE_S of the nodes")
    parser.add_argument(
        "--margin", type=float, default=40.0, help="SIGKILL node 1 this long past HUB_SHUTDOWN_S"
    )
    parser.add_argument(
        "--settle", type=float, default=20.0, help="clients hold this long after the exit bound"
    )
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    result = shutdown(args)
    print(json.dumps(result, indent=2))
    print(
        f"SIGTERM -> exit {result['exit_after_s']} s (HUB_SHUTDOWN_S {args.shutdown_s}), "
        f"closes {result['close_codes_node1']}, seats kept {result['seats_kept']}/"
        f"{result['told_before_sigterm']}, everyone seated {result['everyone_seated']}, "
        f"node 1 log problems {result['node1_log_problems']}",
        file=sys.stderr,
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"shutdown-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
