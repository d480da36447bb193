"""Webhook intake on one hub process: how fast 100ms-shaped webhooks are accepted, and drained.

    .venv/bin/python -m load_tests.benches.webhook_bench --events 20000 --dup 0.1 --clients 64
    .venv/bin/python -m load_tests.benches.webhook_bench --events 20000 --dup 0.1 --clients 64 --redis

One hub (`python -m server run`, memory store, or a fresh redis-server with `--redis`), its inbox
running with the placeholder handler. `--events` distinct `peer.join.success` envelopes for this
hub's rooms, plus `--dup` x that many copies of random ones (100ms retrying after a lost answer), are
shuffled and POSTed to /webhooks/100ms as fast as `--clients` concurrent keep-alive httpx clients
(spread over `--procs` worker processes) can; `--raw` uses a lean asyncio HTTP/1.1 client instead
(httpx costs about 1 ms of CPU a request, on the same 2 cores as the hub). Figures:

- `accepted_per_s`: 200 answers / (last answer - first request);
- `post_latency_ms`: p50 / p99 / max of one POST, request sent to answer read;
- `drained_after_s`: from the last answer until the hub's counters say every accepted entry was
  processed or found a duplicate (polled every 50 ms); `end_to_end_per_s` =
  accepted / (first request to drained);
- `hub_cpu_s`: the hub process's CPU time from the first request to drained, and per POST (the
  machine is shared with the clients and redis-server: this says what the hub itself costs);
- the hub's `proctorhub_webhooks_*` counters at the end (`duplicates` should equal the copies sent).

Everything runs on 127.0.0.1 and stops by itself (`--timeout`).
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
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson

from load_tests.benches.servers import start_hub
from load_tests.judge.stats import summary_ms
from load_tests.run.procs import RESULTS, cpu_s, kill, start_redis
from load_tests.users.worker_pool import raise_nofile

HEADER = "X-Proctorhub-Webhook-Secret"
POLL_S = 0.05


def bodies(events: int, dup: float, seed: int) -> tuple[list[bytes], int]:
    """`events` distinct envelopes plus `dup` x events copies, shuffled; and how many copies."""
    rng = random.Random(seed)
    distinct = [
        orjson.dumps(
            {
                "version": "2.0",
                "id": str(uuid.UUID(int=rng.getrandbits(128))),
                "account_id": "bench-account",
                "app_id": "bench-app",
                "timestamp": "2024-02-12T15:39:55Z",
                "type": "peer.join.success",
                "data": {
                    "room_id": f"room-{n % 60}",
                    "room_name": f"proctorhub-bench-{n % 60}",
                    "session_id": "s1",
                    "peer_id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "user_id": f"cand-{n}",
                    "user_name": f"Candidate {n}",
                    "role": "candidate",
                    "joined_at": "2024-02-12T15:39:55.123456789Z",
                },
            }
        )
        for n in range(events)
    ]
    copies = [rng.choice(distinct) for _ in range(int(events * dup))]
    out = distinct + copies
    rng.shuffle(out)
    return out, len(copies)


def _worker(url: str, secret: str, payloads: list[bytes], clients: int, raw: bool, queue: Any) -> None:
    raise_nofile()

    async def run() -> dict[str, Any]:
        if raw:
            return await _raw(url, secret, payloads, clients)
        pending = iter(payloads)
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        headers = {HEADER: secret, "Content-Type": "application/json"}
        async with httpx.AsyncClient(limits=limits, timeout=60) as http:

            async def client() -> None:
                for body in pending:
                    sent = time.perf_counter()
                    answer = await http.post(url, content=body, headers=headers)
                    latencies.append(time.perf_counter() - sent)
                    statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

            first = time.time()
            await asyncio.gather(*(client() for _ in range(clients)))
            last = time.time()
        return {"latencies": latencies, "statuses": statuses, "first": first, "last": last}

    queue.put(asyncio.run(run()))


class _RawClient(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one POST in flight: the `--raw` client, for when httpx's own
    CPU cost (about 1 ms a request) would measure the client instead of the hub."""

    def __init__(self, requests: Any, latencies: list[float], statuses: dict[int, int]) -> None:
        self._requests = requests
        self._latencies = latencies
        self._statuses = statuses
        self._buffer = b""
        self._sent = 0.0
        self._transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._next()

    def _next(self) -> None:
        request = next(self._requests, None)
        assert self._transport is not None
        if request is None:
            self._transport.close()
            return
        self._sent = time.perf_counter()
        self._transport.write(request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\r\n\r\n")) >= 0:
            head = self._buffer[:end].decode("latin-1").split("\r\n")
            length = next(int(h.split(":", 1)[1]) for h in head if h.lower().startswith("content-length:"))
            if len(self._buffer) < end + 4 + length:
                return
            self._buffer = self._buffer[end + 4 + length :]
            status = int(head[0].split()[1])
            self._latencies.append(time.perf_counter() - self._sent)
            self._statuses[status] = self._statuses.get(status, 0) + 1
            self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def _raw(url: str, secret: str, payloads: list[bytes], clients: int) -> dict[str, Any]:
    target = httpx.URL(url)
    host, port = str(target.host), int(target.port or 80)
    head = f"POST {target.path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
    requests = iter(
        f"{head}{HEADER}: {secret}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        for body in payloads
    )
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    loop = asyncio.get_running_loop()
    first = time.time()
    conns = [
        (await loop.create_connection(lambda: _RawClient(requests, latencies, statuses), host, port))[1]
        for _ in range(clients)
    ]
    await asyncio.gather(*(c.done for c in conns))
    return {"latencies": latencies, "statuses": statuses, "first": first, "last": time.time()}


def counters(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("proctorhub_webhooks_") and "_created" not in line:
            name, _, value = line.rpartition(" ")
            out[name.removeprefix("proctorhub_webhooks_").replace("_total", "")] = float(value)
    return out


def drained(c: dict[str, float], accepted: float) -> bool:
    """Every accepted entry processed, found a duplicate or parked (the backlog gauge lags up to ~1 s)."""
    parked = sum(v for k, v in c.items() if k.startswith("parked"))
    return c.get("processed", 0) + c.get("duplicates", 0) + parked >= accepted


def bench(args: argparse.Namespace) -> dict[str, Any]:
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    secret = secrets.token_urlsafe(24)
    redis = start_redis() if args.redis else None
    hub = start_hub(
        f"webhooks-{stamp}",
        secrets.token_urlsafe(32),
        RESULTS / f"webhooks-{stamp}.log",
        redis_url=redis.url if redis else None,
        extra_env={"HMS_WEBHOOK_SECRET": secret, "LOG_LEVEL": "WARNING"},
    )
    try:
        payloads, copies = bodies(args.events, args.dup, args.seed)
        url = f"http://127.0.0.1:{hub.port}/webhooks/100ms"
        ctx = multiprocessing.get_context("spawn")
        queue: Any = ctx.Queue()
        per = max(1, args.clients // args.procs)
        workers = [
            ctx.Process(target=_worker, args=(url, secret, payloads[w :: args.procs], per, args.raw, queue))
            for w in range(args.procs)
        ]
        cpu_before = cpu_s(hub.pid)
        for w in workers:
            w.start()
        parts = [queue.get(timeout=args.timeout) for _ in workers]
        for w in workers:
            w.join(timeout=30)
        first = min(p["first"] for p in parts)
        last = max(p["last"] for p in parts)
        statuses: dict[int, int] = {}
        for p in parts:
            for status, n in p["statuses"].items():
                statuses[status] = statuses.get(status, 0) + n
        accepted = statuses.get(200, 0)
        deadline = time.time() + args.timeout
        while not drained(final := counters(hub.port), accepted):
            if time.time() > deadline:
                raise RuntimeError(f"not drained within {args.timeout}s: {final}")
            time.sleep(POLL_S)
        done = time.time()
        hub_cpu = cpu_s(hub.pid) - cpu_before
        while final.get("backlog", 0) > 0 and time.time() < done + 10:  # the gauge is refreshed every ~1 s
            time.sleep(POLL_S)
            final = counters(hub.port)
        return {
            "scenario": "webhooks",
            "store": "redis" if redis else "memory",
            "events": args.events,
            "copies_sent": copies,
            "posts": len(payloads),
            "clients": per * args.procs,
            "client": "raw" if args.raw else "httpx",
            "procs": args.procs,
            "statuses": statuses,
            "accepted_per_s": round(accepted / (last - first), 1),
            "post_latency_ms": summary_ms([x for p in parts for x in p["latencies"]]),
            "drained_after_s": round(done - last, 3),
            "end_to_end_per_s": round(accepted / (done - first), 1),
            "hub_cpu_s": round(hub_cpu, 2),
            "hub_cpu_per_post_ms": round(hub_cpu / len(payloads) * 1000, 3),
            "hub": {k: v for k, v in final.items() if v},
        }
    finally:
        kill(hub.proc)
        if redis is not None:
            redis.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m load_tests.benches.webhook_bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--dup", type=float, default=0.1, help="copies sent again, as a fraction of --events")
    parser.add_argument("--clients", type=int, default=64, help="concurrent POSTs in flight, all procs")
    parser.add_argument("--procs", type=int, default=2, help="client worker processes")
    parser.add_argument("--redis", action="store_true", help="the hub on a fresh redis-server")
    parser.add_argument("--raw", action="store_true", help="a lean asyncio HTTP/1.1 client instead of httpx")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    result = bench(args)
    print(json.dumps(result, indent=2))
    path = Path(RESULTS) / f"webhooks-{result['store']}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
