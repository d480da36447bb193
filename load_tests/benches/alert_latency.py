"""From a 100ms webhook's arrival to the `alert` on a proctor's socket.

    .venv/bin/python -m load_tests.benches.alert_latency --candidates 200 --rate 100 --seconds 20
    .venv/bin/python -m load_tests.benches.alert_latency --candidates 200 --rate 100 --seconds 20 --redis

One hub (`python -m server run`, memory store or a fresh redis-server), one event, `--candidates`
seated candidates and one proctor per room holding their sockets. Then `--rate` webhooks a second
for `--seconds`: each a `stream.recording.failure` of a new peer of a random candidate (an alert at
once, kind `recording.failed`), POSTed to /webhooks/100ms with the secret header. The latency of
one is from just before its POST is written to when the proctor watching that candidate's room
reads the matching `alert` from its socket: intake, durable store, inbox, timeline, allocation
lookup, fan-out and the socket, all included. Loopback only; stops by itself (`--timeout`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
import uuid
from typing import Any

import httpx
from websockets.asyncio.client import connect

from load_tests.benches.servers import start_hub
from load_tests.judge.stats import summary_ms
from load_tests.run.procs import RESULTS, kill, start_redis
from load_tests.users.worker_pool import raise_nofile
from server.auth import mint_session

HEADER = "X-Proctorhub-Webhook-Secret"
API_KEY = "alert-latency-api-key-" + "k" * 16


def envelope(room_id: str, user_id: str) -> dict[str, Any]:
    peer = str(uuid.uuid4())
    return {
        "version": "2.0",
        "id": str(uuid.uuid4()),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "type": "stream.recording.failure",
        "data": {
            "room_id": room_id,
            "session_id": "bench-session",
            "peer_id": peer,
            "stream_id": peer,
            "user_id": user_id,
            "recording_id": uuid.uuid4().hex,
            "error_message": "INTERNAL_ERROR",
            "size": 0,
            "duration": 0,
            "type": "regular",
        },
    }


async def login(url: str, secret: str, user: str, role: str, event: str) -> Any:
    ws = await connect(url, subprotocols=["proctorhub.v1.json"], compression=None, max_size=None)  # type: ignore[list-item]
    tok = mint_session(secret, user_id=user, event_id=event, role=role, now=time.time())  # type: ignore[arg-type]
    await ws.send(json.dumps({"type": "auth", "id": 1, "data": {"token": tok}}))
    return ws


async def first(ws: Any, msg_type: str) -> dict[str, Any]:
    while True:
        message = json.loads(await ws.recv())
        if message["type"] == msg_type:
            return dict(message)


async def run(
    args: argparse.Namespace, http_base: str, ws_url: str, hub_secret: str, wh_secret: str
) -> dict[str, Any]:
    event = "alert-latency"
    auth = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=http_base, timeout=30) as http:
        body = {
            "event_id": event,
            "name": event,
            "room_size": 10,
            "proctor_load": 10,
            "expected_candidates": args.candidates,
        }
        (await http.post("/api/v1/events", json=body, headers=auth)).raise_for_status()
        rooms: dict[str, str] = {}
        sockets = []
        for i in range(args.candidates):
            ws = await login(ws_url, hub_secret, f"c{i}", "candidate", event)
            sockets.append(ws)
            assign = await first(ws, "room.assign")
            rooms[f"c{i}"] = assign["data"]["room_id"]
        proctors: dict[str, Any] = {}
        for i in range(len(set(rooms.values()))):
            ws = await login(ws_url, hub_secret, f"p{i}", "proctor", event)
            assign = await first(ws, "room.assign")
            for room in assign["data"].get("rooms", []):
                proctors[room["room_id"]] = ws
        await asyncio.sleep(1)  # later rebalances settle
        allocation = (await http.get(f"/api/v1/events/{event}/rooms", headers=auth)).json()
        watcher = {r["room_id"]: r["proctors"][0] for r in allocation["rooms"] if r["proctors"]}
        sent: dict[str, float] = {}
        got: dict[str, float] = {}

        async def read(ws: Any) -> None:
            while True:
                message = json.loads(await ws.recv())
                if message["type"] == "alert" and message["data"]["kind"] == "recording.failed":
                    peer = message["data"]["detail"]["peer_id"]
                    got.setdefault(peer, time.perf_counter())

        readers = [asyncio.create_task(read(ws)) for ws in set(proctors.values())]
        candidates = sorted(rooms)
        interval = 1 / args.rate
        posts = []
        start = time.perf_counter()
        headers = {HEADER: wh_secret}
        for n in range(int(args.rate * args.seconds)):
            user = candidates[n % len(candidates)]
            body = envelope(rooms[user], user)
            if rooms[user] not in watcher:
                continue

            async def post(b: dict[str, Any] = body) -> None:
                sent[b["data"]["peer_id"]] = time.perf_counter()
                (await http.post("/webhooks/100ms", json=b, headers=headers)).raise_for_status()

            posts.append(asyncio.create_task(post()))
            await asyncio.sleep(max(0.0, start + (n + 1) * interval - time.perf_counter()))
        await asyncio.gather(*posts)
        deadline = time.perf_counter() + args.timeout
        while len(got) < len(sent) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        for task in readers:
            task.cancel()
        for ws in [*sockets, *set(proctors.values())]:
            await ws.close()
    latencies = [got[p] - sent[p] for p in sent if p in got]
    return {"webhooks": len(sent), "alerted": len(latencies), "alert_latency_ms": summary_ms(latencies)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m load_tests.benches.alert_latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--rate", type=float, default=100.0, help="webhooks per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--redis", action="store_true")
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    raise_nofile()
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    hub_secret, wh_secret = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    redis = start_redis() if args.redis else None
    hub = start_hub(
        f"alerts-{stamp}",
        hub_secret,
        RESULTS / f"alerts-{stamp}.log",
        redis_url=redis.url if redis else None,
        extra_env={"HMS_WEBHOOK_SECRET": wh_secret, "HUB_API_KEY": API_KEY, "LOG_LEVEL": "WARNING"},
    )
    try:
        result = asyncio.run(run(args, hub.http, hub.url, hub_secret, wh_secret))
    finally:
        kill(hub.proc)
        if redis is not None:
            redis.stop()
    result |= {"store": "redis" if redis else "memory", "rate": args.rate, "candidates": args.candidates}
    print(json.dumps(result, indent=2))
    (RESULTS / f"alerts-{stamp}.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
