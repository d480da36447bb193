"""The three scenarios: idle sockets, presence changes to watchers, one status to many watchers.

(The fourth, `tokens`, is in hub_tokens.py and uses the helpers here.)

Each scenario runs against a `Target` (hub nodes or the bare server, already started) with the
worker pool holding the many sockets, and returns `(figures, details)`: `figures` is a flat
dict of numbers compared hub/bare, `details` whatever else explains them.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from load_tests.benches.held_sockets import SUBPROTOCOL
from load_tests.benches.servers import Server
from load_tests.judge.stats import Action, merge, summary_ms
from load_tests.run.procs import Redis, cpu_s, hub_metrics, rss_kib
from load_tests.users.worker_pool import WorkerPool
from server.auth import Role, mint_session

EVENT = "bench"


@dataclass
class Target:
    """What a scenario runs against: one or more nodes of the same kind."""

    kind: str  # "hub" or "bare"
    servers: list[Server]
    secret: str
    redis: Redis | None = None
    simulator: Server | None = None  # the one 100ms simulator of hub nodes on Redis
    notes: list[str] = field(default_factory=list)
    api_key: str | None = None  # HUB_API_KEY, when the scenario needs the HTTP API

    def rss_kib(self) -> int:
        return sum(rss_kib(s.pid) for s in self.servers)

    def cpu_s(self) -> float:
        return sum(cpu_s(s.pid) for s in self.servers)

    def metrics(self, extra: tuple[str, ...] = ()) -> dict[str, dict[str, float]]:
        if self.kind != "hub":
            return {}
        return {s.name: hub_metrics(s.port, extra, self.api_key) for s in self.servers}


@dataclass
class Options:
    sockets: int = 10_000
    proctors: int = 100
    watchers: int = 5_000
    role: str = "admin"
    rounds: int | None = None
    interval_s: float | None = None
    hold_s: float = 30.0
    concurrency: int = 128
    timeout_s: float = 180.0
    token_ttl_s: int = 60
    room_size: int = 100


def progress(message: str) -> None:
    """One line on stderr so a long run shows where it is."""
    print(f"[{time.strftime('%H:%M:%S')}]   {message}", file=sys.stderr, flush=True)


async def _settle(target: Target, limit_s: float = 60.0) -> float:
    """Wait until the servers are nearly idle (< 10 % of a core over 0.5 s); seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        before = target.cpu_s()
        await asyncio.sleep(0.5)
        if target.cpu_s() - before < 0.05:
            break
    return round(time.monotonic() - started, 1)


def _tokens(secret: str, users: list[tuple[str, Role]], event: str = EVENT) -> list[str]:
    now = time.time()
    return [
        mint_session(secret, user_id=user, event_id=event, role=role, now=now, ttl_s=4 * 3600)
        for user, role in users
    ]


@dataclass
class Opened:
    """How opening a batch of sockets went."""

    count: int
    seconds: float
    errors: dict[str, int]
    server_cpu_s: float

    def details(self) -> dict[str, Any]:
        rate = round(self.count / self.seconds, 1) if self.seconds else 0.0
        return {
            "connect_s": round(self.seconds, 2),
            "connects_per_s": rate,
            "server_cpu_connect_s": round(self.server_cpu_s, 2),
            "connect_errors": self.errors,
        }


async def open_many(
    target: Target,
    pool: WorkerPool,
    users: list[tuple[str, Role]],
    *,
    record: bool,
    opts: Options,
    event: str = EVENT,
    keep_tokens: bool = False,
) -> Opened:
    """Spread sockets over workers (round-robin) and nodes, concurrently."""
    tokens = _tokens(target.secret, users, event)
    nodes = target.servers
    per_worker: list[list[tuple[str, str]]] = [[] for _ in range(len(pool))]
    for i, token in enumerate(tokens):
        worker = i % len(pool)
        node = nodes[(i // len(pool)) % len(nodes)]
        per_worker[worker].append((node.url, token))
    cpu_before = target.cpu_s()
    started = time.time()
    replies = await pool.each(
        "open",
        [
            {"targets": t, "record": record, "concurrency": opts.concurrency, "tokens": keep_tokens}
            for t in per_worker
        ],
        timeout=opts.timeout_s,
    )
    errors: dict[str, int] = {}
    for reply in replies:
        for text, count in reply["errors"].items():
            errors[text] = errors.get(text, 0) + count
    opened = Opened(
        sum(r["opened"] for r in replies),
        max(r["ended"] for r in replies) - started,
        errors,
        target.cpu_s() - cpu_before,
    )
    note = f"; errors {errors}" if errors else ""
    progress(f"opened {opened.count}/{len(users)} sockets in {opened.seconds:.1f}s{note}")
    return opened


async def pool_status(pool: WorkerPool) -> dict[str, Any]:
    replies = await pool.each("status", [{} for _ in range(len(pool))], timeout=60)
    codes: dict[str, int] = {}
    other: dict[str, int] = {}
    for reply in replies:
        for code, count in reply["close_codes"].items():
            codes[code] = codes.get(code, 0) + count
        for kind, count in reply["other_messages"].items():
            other[kind] = other.get(kind, 0) + count
    return {
        "open": sum(r["open"] for r in replies),
        "total": sum(r["total"] for r in replies),
        "close_codes": codes,
        "other_messages": other,
        "client_gc_longest_ms": max((r.get("gc_longest_ms", 0.0) for r in replies), default=0.0),
    }


async def close_all(pool: WorkerPool) -> float:
    replies = await pool.each("close", [{} for _ in range(len(pool))], timeout=120)
    return max(r["seconds"] for r in replies)


# ---------------------------------------------------------------- idle


async def idle(target: Target, pool: WorkerPool, opts: Options) -> tuple[dict[str, float], dict[str, Any]]:
    """N authenticated candidates: connect time, RSS per socket, none dropped over the hold."""
    await asyncio.sleep(1.0)
    rss_before = target.rss_kib()
    users: list[tuple[str, Role]] = [(f"idle-{i}", "candidate") for i in range(opts.sockets)]
    batch = await open_many(target, pool, users, record=False, opts=opts)
    opened = batch.count
    await asyncio.sleep(1.0)
    rss_after = target.rss_kib()
    progress(f"holding {opened} sockets for {opts.hold_s:.0f}s")
    samples: list[dict[str, Any]] = []
    held_from = time.monotonic()
    cpu_held_from = target.cpu_s()
    while time.monotonic() - held_from < opts.hold_s:
        await asyncio.sleep(min(5.0, opts.hold_s - (time.monotonic() - held_from)))
        status = await pool_status(pool)
        samples.append(
            {
                "t_s": round(time.monotonic() - held_from, 1),
                "open": status["open"],
                "rss_kib": target.rss_kib(),
            }
        )
    status = await pool_status(pool)
    hold_cores = (target.cpu_s() - cpu_held_from) / max(time.monotonic() - held_from, 1e-9)
    rss_held = target.rss_kib()
    metrics = target.metrics()
    close_s = await close_all(pool)
    per_socket = (rss_after - rss_before) / opened if opened else float("nan")
    figures = {
        "sockets_opened": opened,
        "connect_s": round(batch.seconds, 2),
        "connects_per_s": batch.details()["connects_per_s"],
        "server_cpu_connect_s": round(batch.server_cpu_s, 2),
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "rss_per_socket_kib": round(per_socket, 2),
        "rss_per_socket_after_hold_kib": round((rss_held - rss_before) / opened, 2) if opened else 0.0,
        "dropped_during_hold": opened - status["open"],
        "server_pings_answered": status["other_messages"].get("ping", 0),
        "server_cores_during_hold": round(hold_cores, 3),
        "close_all_s": round(close_s, 2),
    }
    details = {
        "connect_errors": batch.errors,
        "hold_samples": samples,
        "final_status": status,
        "hub_metrics_after_hold": metrics,
    }
    return figures, details


# ---------------------------------------------------------------- the driving candidate


async def _candidate(url: str, token: str) -> tuple[ClientConnection, float, float]:
    """Connect a candidate and authenticate: (socket, TCP connect started, `auth` sent), after `hello`."""
    started = time.time()
    ws = await connect(url, subprotocols=[SUBPROTOCOL], compression=None, ping_interval=None, open_timeout=30)
    sent = time.time()
    await ws.send(orjson.dumps({"type": "auth", "id": 1, "data": {"token": token}}).decode())
    async with asyncio.timeout(30):
        while True:
            if orjson.loads(await ws.recv()).get("type") == "hello":
                return ws, started, sent


async def _collect(pool: WorkerPool, candidate_id: str, actions: list[Action]) -> dict[str, Any]:
    parts = await pool.each(
        "collect", [{"candidate_id": candidate_id, "actions": actions}] * len(pool), timeout=120
    )
    return merge(parts)


def _watchers(count: int, role: str, prefix: str) -> list[tuple[str, Role]]:
    roles: list[Role] = ["proctor", "admin"] if role == "mixed" else [role]  # type: ignore[list-item]
    return [(f"{prefix}-{i}", roles[i % len(roles)]) for i in range(count)]


# ---------------------------------------------------------------- presence


async def presence(
    target: Target, pool: WorkerPool, opts: Options
) -> tuple[dict[str, float], dict[str, Any]]:
    """One candidate connects and disconnects; latency to each watcher's `candidate.status`. The
    watchers are the event's admins: the candidate has no room, and a candidate without a room reaches
    the proctors only once they were shown it (a roster, a status of their rooms)."""
    rounds = opts.rounds or 200
    pause = opts.interval_s if opts.interval_s is not None else 0.1
    batch = await open_many(
        target, pool, _watchers(opts.proctors, "admin", "presence-admin"), record=True, opts=opts
    )
    opened = batch.count
    candidate_id = "presence-candidate"
    (token,) = _tokens(target.secret, [(candidate_id, "candidate")])
    url = target.servers[0].url
    settle_s = await _settle(target)
    progress(f"servers idle after {settle_s}s; {rounds} connect/close rounds")
    actions: list[Action] = []
    cpu_before = target.cpu_s()
    handshakes: list[float] = []  # TCP connect started -> auth sent, per round
    for _ in range(rounds):
        ws, started, sent = await _candidate(url, token)
        handshakes.append(sent - started)
        actions.append((sent, "online", None))
        await asyncio.sleep(pause)
        closing = time.time()
        await ws.close()
        actions.append((closing, "reconnecting", None))
        await asyncio.sleep(pause)
    cpu_used = target.cpu_s() - cpu_before
    await asyncio.sleep(1.5)
    result = await _collect(pool, candidate_id, actions)
    status = await pool_status(pool)
    metrics = target.metrics()
    await close_all(pool)
    every = [x for per in result["recv"] for x in per]
    online = [x for i, per in enumerate(result["recv"]) if i % 2 == 0 for x in per]
    offline = [x for i, per in enumerate(result["recv"]) if i % 2 == 1 for x in per]
    from_tcp = [x + handshakes[i // 2] for i, per in enumerate(result["recv"]) if i % 2 == 0 for x in per]
    total, on, off, tcp = summary_ms(every), summary_ms(online), summary_ms(offline), summary_ms(from_tcp)
    figures = {
        "watchers_opened": opened,
        "presence_changes": len(actions),
        "deliveries": total["n"],
        "missing_deliveries": sum(result["missing"]),
        "latency_p50_ms": total["p50_ms"],
        "latency_p99_ms": total["p99_ms"],
        "latency_max_ms": total["max_ms"],
        "online_p50_ms": on["p50_ms"],
        "online_p99_ms": on["p99_ms"],
        "online_from_tcp_connect_p50_ms": tcp["p50_ms"],
        "online_from_tcp_connect_p99_ms": tcp["p99_ms"],
        "reconnecting_p50_ms": off["p50_ms"],
        "reconnecting_p99_ms": off["p99_ms"],
        "server_cpu_s": round(cpu_used, 2),
        "watchers_dropped": opened - status["open"],
    }
    details = {
        **batch.details(),
        "settle_s": settle_s,
        "final_status": status,
        "hub_metrics": metrics,
        "missing_per_action": result["missing"],
    }
    return figures, details


# ---------------------------------------------------------------- broadcast


async def broadcast(
    target: Target, pool: WorkerPool, opts: Options
) -> tuple[dict[str, float], dict[str, Any]]:
    """One candidate toggles video; time until the last of many watchers has each change."""
    rounds = opts.rounds or 20
    pause = opts.interval_s if opts.interval_s is not None else 1.0
    batch = await open_many(
        target, pool, _watchers(opts.watchers, opts.role, "watcher"), record=True, opts=opts
    )
    opened = batch.count
    settle_s = await _settle(target)  # let the join storm's backlog drain before measuring
    progress(f"servers idle after {settle_s}s; candidate connects, then {rounds} video toggles")
    candidate_id = "broadcast-candidate"
    (token,) = _tokens(target.secret, [(candidate_id, "candidate")])
    cpu_before = target.cpu_s()
    ws, _, sent = await _candidate(target.servers[0].url, token)
    actions: list[Action] = [(sent, "online", None)]
    await asyncio.sleep(pause)
    for k in range(rounds):
        video = k % 2 == 0
        media = {"room_id": None, "joined": True, "video": video, "audio": True}
        frame = orjson.dumps({"type": "media.status", "id": k + 2, "data": media}).decode()
        sent = time.time()
        await ws.send(frame)
        actions.append((sent, "online", "on" if video else "off"))
        await asyncio.sleep(pause)
    cpu_used = target.cpu_s() - cpu_before
    await asyncio.sleep(1.0)
    result = await _collect(pool, candidate_id, actions)
    await ws.close()
    status = await pool_status(pool)
    metrics = target.metrics()
    await close_all(pool)
    toggles = result["recv"][1:]
    last = [max(per) for per in toggles if per]
    written = [max(per) for per in result["ts"][1:] if per]
    every = [x for per in toggles for x in per]
    last_s, all_s, online_all = summary_ms(last), summary_ms(every), summary_ms(result["recv"][0])
    stamped = summary_ms(written)
    figures = {
        "watchers_opened": opened,
        "rounds": rounds,
        "missing_deliveries": sum(result["missing"]),
        "last_delivery_p50_ms": last_s["p50_ms"],
        "last_delivery_p99_ms": last_s["p99_ms"],
        "last_delivery_max_ms": last_s["max_ms"],
        "delivery_p50_ms": all_s["p50_ms"],
        "delivery_p99_ms": all_s["p99_ms"],
        "server_stamp_last_p50_ms": stamped["p50_ms"],
        "online_last_delivery_ms": online_all["max_ms"],
        "online_delivery_p50_ms": online_all["p50_ms"],
        "server_cpu_s": round(cpu_used, 2),
        "watchers_dropped": opened - status["open"],
    }
    details = {
        **batch.details(),
        "settle_s": settle_s,
        "last_delivery_ms_per_round": [round(x * 1000, 1) for x in last],
        "server_ts_last_written_ms_per_round": [round(x * 1000, 1) for x in written],
        "missing_per_action": result["missing"],
        "final_status": status,
        "hub_metrics": metrics,
    }
    return figures, details


SCENARIOS = {"idle": idle, "presence": presence, "broadcast": broadcast}
