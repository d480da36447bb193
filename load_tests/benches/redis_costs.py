"""What one join, one status change and one leave cost in Redis, counted by Redis itself.

    .venv/bin/python -m load_tests.benches.redis_costs --nodes 1,2 --batch 50

For each cluster size: a redis-server, one standalone 100ms simulator and `nodes` hub nodes; an
event with `--seated` candidates, a proctor and an admin on every node. Then Redis's `MONITOR` is
read while the cluster idles (the background rate: leases, liveness, the webhook reader), and while
`--batch` more candidates join (auth -> `room.assign`, then `media.status` with video on), turn
their video off (the admins see `candidate.status`), and leave (their presence goes offline past a
1 s grace). The idle window starts once the monitors have checked every arrival. A window's commands,
less the idle rate over its length, divided by the batch, are the cost of one action: round trips
(commands a client sent, a MULTI...EXEC block or a script call counting once; a plain pipeline's
commands count one each, so this is an upper bound), and the commands scripts ran inside Redis.
Background work is bursty, so the
commands that name the acting user (a lower bound: a lease or a lock names no user) are counted
too. Subscriptions are Redis's own count (`PUBSUB NUMSUB` of every channel) before and after the batch
joined. Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import secrets
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect

from load_tests.benches.output import write_json
from load_tests.benches.servers import Cluster, start_cluster
from load_tests.run.procs import RESULTS
from server.auth import mint_session

API_KEY = "costs-api-key-" + "k" * 20
EVENT = "costs"
GAP_THRESHOLD_S = 10.0  # the hub's default RECORDING_GAP_THRESHOLD_S
ACTOR = "batchuser-"
"""The acting candidates' ids start with this, so the commands that name them can be told apart."""


def _token(secret: str, user: str, role: str) -> str:
    return mint_session(secret, user_id=user, event_id=EVENT, role=role, now=time.time(), ttl_s=3600)  # type: ignore[arg-type]


@dataclass
class Tally:
    """Commands seen by MONITOR in one window."""

    seconds: float = 0.0
    sent: Counter[str] = field(default_factory=Counter)
    scripted: Counter[str] = field(default_factory=Counter)
    trips: int = 0  # commands sent, a MULTI...EXEC block counting once
    naming: int = 0  # commands sent whose text names one of the acting users
    _in_multi: set[str] = field(default_factory=set)

    def add(self, entry: dict[str, Any]) -> None:
        name = entry["command"].split(" ", 1)[0].upper()
        if entry.get("client_type") == "lua":
            self.scripted[name] += 1
            return
        self.sent[name] += 1
        if ACTOR in entry["command"]:
            self.naming += 1
        client = f"{entry.get('client_address')}:{entry.get('client_port')}"
        if name == "MULTI":
            self._in_multi.add(client)
            self.trips += 1
        elif client in self._in_multi:
            if name in ("EXEC", "DISCARD"):
                self._in_multi.discard(client)
        else:
            self.trips += 1


async def _monitor(url: str, action: Callable[[], Awaitable[None]]) -> Tally:
    """Every command Redis runs while `action` runs; MONITOR marks a script's own commands `lua`."""
    client = aioredis.from_url(url)
    tally = Tally()
    async with client.monitor() as monitor:

        async def read() -> None:
            while True:
                tally.add(await monitor.next_command())

        reader = asyncio.create_task(read())
        await asyncio.sleep(0.2)  # MONITOR is on before the action starts
        began = time.monotonic()
        await action()
        await asyncio.sleep(0.3)  # what the action set going (fan-out, announcements) lands
        tally.seconds = time.monotonic() - began
        reader.cancel()  # the connection is dropped with the monitor, mid-read or not
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    await client.aclose()
    return tally


async def _subscriptions(url: str) -> dict[str, int]:
    client = aioredis.from_url(url)
    channels = await client.pubsub_channels()
    counts = await client.pubsub_numsub(*channels) if channels else []
    await client.aclose()
    return {"channels": len(channels), "subscriptions": sum(int(n) for _, n in counts)}


class Watcher:
    """An admin socket that counts what it is told, per message type and candidate."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: Counter[tuple[str, str]] = Counter()

    async def run(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            data = message.get("data") or {}
            if message["type"] == "candidate.status":
                self.seen[(data.get("video", ""), data.get("presence", ""))] += 1


async def _wait(check: Callable[[], bool], what: str, limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {limit_s:g}s: {what}")
        await asyncio.sleep(0.05)


async def _seat(url: str, token: str) -> ClientConnection:
    """A candidate seated and on camera, as a page is once it joined its room (one without video
    would be a gap alert for every candidate, ten seconds later, in the idle window)."""
    ws = await connect(url, compression=None, open_timeout=60)
    await ws.send(json.dumps({"type": "auth", "data": {"token": token}}))
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 60))
        if message["type"] == "room.assign":
            await ws.send(json.dumps({"type": "ack", "data": {"id": message["id"]}}))
            room = message["data"]["room_id"]
            status = {"room_id": room, "joined": True, "video": True, "audio": True}
            await ws.send(json.dumps({"type": "media.status", "data": status}))
            return ws


async def _drain(ws: ClientConnection, seen: Counter[str] | None = None) -> None:
    async for raw in ws:
        if seen is not None:
            seen[json.loads(raw)["type"]] += 1


async def _measure(cluster: Cluster, secret: str, seated: int, batch: int) -> dict[str, Any]:
    assert cluster.redis is not None
    redis_url = cluster.redis.url
    urls = [node.url for node in cluster.nodes]
    httpx.post(
        f"{cluster.nodes[0].http}/api/v1/events",
        json={"event_id": EVENT, "name": EVENT, "room_size": 20, "proctor_load": 20},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    ).raise_for_status()
    watchers = []
    tasks = []
    for n, url in enumerate(urls):
        proctor = await _seat_proctor(url, _token(secret, f"p{n}", "proctor"))
        tasks.append(asyncio.create_task(_drain(proctor)))
        admin = await connect(url, compression=None)
        await admin.send(json.dumps({"type": "auth", "data": {"token": _token(secret, f"a{n}", "admin")}}))
        watcher = Watcher(admin)
        watchers.append(watcher)
        tasks.append(asyncio.create_task(watcher.run()))
    base = await asyncio.gather(
        *(_seat(urls[i % len(urls)], _token(secret, f"c{i}", "candidate")) for i in range(seated))
    )
    bystanders: Counter[str] = Counter()  # what the seated candidates hear while the batch acts
    tasks += [asyncio.create_task(_drain(ws, bystanders)) for ws in base]
    seated_at = time.monotonic()
    checks = await _settle(cluster)
    settled_s = time.monotonic() - seated_at
    before = await _subscriptions(redis_url)

    async def idle() -> None:
        await asyncio.sleep(10)

    idle_tally = await _monitor(redis_url, idle)
    joined: list[ClientConnection] = []

    async def join() -> None:
        joined.extend(
            await asyncio.gather(
                *(
                    _seat(urls[i % len(urls)], _token(secret, f"{ACTOR}{i:04d}", "candidate"))
                    for i in range(batch)
                )
            )
        )

    join_tally = await _monitor(redis_url, join)
    after = await _subscriptions(redis_url)
    readers = [asyncio.create_task(_drain(ws)) for ws in joined]
    watcher = watchers[0]

    async def status() -> None:
        off = watcher.seen[("off", "online")]
        for ws in joined:
            frame = {"room_id": None, "joined": False, "video": False, "audio": False}
            await ws.send(json.dumps({"type": "media.status", "data": frame}))
        await _wait(lambda: watcher.seen[("off", "online")] >= off + batch, "every status reached an admin")

    status_tally = await _monitor(redis_url, status)

    async def leave() -> None:
        offline = sum(n for (_, presence), n in watcher.seen.items() if presence == "offline")
        for ws in joined:
            await ws.close()
        await _wait(
            lambda: sum(n for (_, p), n in watcher.seen.items() if p == "offline") >= offline + batch,
            "every leave reached an admin past the grace",
        )

    leave_tally = await _monitor(redis_url, leave)
    for task in tasks + readers:
        task.cancel()
    rate = {k: v / idle_tally.seconds for k, v in (idle_tally.sent + idle_tally.scripted).items()}
    return {
        "nodes": len(urls),
        "seated": seated,
        "timeline_checks_before_idle": checks,
        "seconds_until_the_monitors_settled": round(settled_s, 1),
        "batch": batch,
        "idle_commands_per_s": round(sum(idle_tally.sent.values()) / idle_tally.seconds, 1),
        "subscriptions_before_batch": before,
        "subscriptions_after_batch": after,
        "join": _per_action(join_tally, idle_tally, batch),
        "status_change": _per_action(status_tally, idle_tally, batch),
        "leave": _per_action(leave_tally, idle_tally, batch),
        "seated_candidates_were_sent": dict(bystanders),
        "idle_rate_by_command": {k: round(v, 1) for k, v in sorted(rate.items())},
    }


def _timeline_checks(cluster: Cluster) -> float:
    total = 0.0
    for node in cluster.nodes:
        text = httpx.get(
            f"{node.http}/metrics", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10
        ).text
        total += sum(
            float(line.split()[1])
            for line in text.splitlines()
            if line.startswith("proctorhub_timeline_checks_total")
        )
    return total


async def _settle(cluster: Cluster, limit_s: float = 120) -> float:
    """Wait until the monitors have checked every new arrival, and once more a gap threshold (10 s)
    after it sat, and then made no check for 2 s: the idle window must not count the arrivals'
    checks. Returns the checks made so far."""
    await asyncio.sleep(GAP_THRESHOLD_S + 1)
    deadline = time.monotonic() + limit_s
    last, still_since = -1.0, time.monotonic()
    while time.monotonic() < deadline:
        checks = _timeline_checks(cluster)
        if checks != last:
            last, still_since = checks, time.monotonic()
        elif time.monotonic() - still_since >= 2:
            break
        await asyncio.sleep(0.25)
    return last


async def _seat_proctor(url: str, token: str) -> ClientConnection:
    ws = await connect(url, compression=None)
    await ws.send(json.dumps({"type": "auth", "data": {"token": token}}))
    return ws


def _per_action(tally: Tally, idle: Tally, batch: int) -> dict[str, Any]:
    """Commands of the window less the idle rate over its length, per action."""

    def net(window: Counter[str], background: Counter[str]) -> dict[str, float]:
        out = {}
        for name, count in window.items():
            extra = count - background.get(name, 0) / idle.seconds * tally.seconds
            if extra / batch >= 0.05:
                out[name] = round(extra / batch, 2)
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    sent = net(tally.sent, idle.sent)
    scripted = net(tally.scripted, idle.scripted)
    idle_trips = idle.trips / idle.seconds * tally.seconds
    return {
        "round_trips": round((tally.trips - idle_trips) / batch, 1),
        "commands_naming_the_user": round(tally.naming / batch, 1),
        "commands_sent": round(sum(sent.values()), 1),
        "in_scripts": round(sum(scripted.values()), 1),
        "sent": sent,
        "scripted": scripted,
        "window_s": round(tally.seconds, 2),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    results = []
    for nodes, seated in itertools.product(args.nodes, args.seated):
        secret = secrets.token_urlsafe(32)
        env = {
            "HUB_API_KEY": API_KEY,
            "HUB_PRESENCE_GRACE_S": "1",
            "HUB_RATE_PER_S": "100",
            "LOG_LEVEL": "WARNING",
        }
        cluster = start_cluster("costs", secret, RESULTS / "costs", store="redis", nodes=nodes, extra_env=env)
        try:
            results.append(asyncio.run(_measure(cluster, secret, seated, args.batch)))
        finally:
            cluster.stop()
        print(json.dumps(results[-1], indent=1))
    return {"bench": "redis_costs", "runs": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=lambda s: [int(n) for n in s.split(",")], default=[1, 2])
    parser.add_argument(
        "--seated",
        type=lambda s: [int(n) for n in s.split(",")],
        default=[200],
        help="candidates already seated",
    )
    parser.add_argument("--batch", type=int, default=50, help="candidates whose actions are counted")
    args = parser.parse_args(argv)
    print(write_json("redis_costs", run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
