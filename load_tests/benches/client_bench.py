"""Which WebSocket client for the simulated users: `python -m load_tests.benches.client_bench [--sockets N]`.

One hub on loopback; in this process, N candidates connect and authenticate (wait for `hello`), are held
for a few seconds and closed, first with the lean sans-I/O client (wire.Socket), then with the
`websockets` asyncio client (a task per connection, its own keepalive off). Printed: this process's CPU
seconds to connect N, its CPU per second while holding them, and its RSS per socket.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import secrets
import sys
import time
from typing import Any

import orjson
from websockets.asyncio.client import connect

from load_tests.benches import servers
from load_tests.run import procs
from load_tests.users import wire
from load_tests.users.worker_pool import raise_nofile
from server.auth import mint_session

HOLD_S = 5.0


class _User:
    def __init__(self, token: str) -> None:
        self.token = token
        self.hello: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_open(self, sock: wire.Socket) -> None:
        sock.send("auth", {"token": self.token})

    def on_message(self, message: dict[str, Any], now: float) -> None:
        if message.get("type") == "hello" and not self.hello.done():
            self.hello.set_result(None)

    def on_close(self, code: int) -> None:
        if not self.hello.done():
            self.hello.set_exception(ConnectionError(str(code)))


async def lean(url: str, tokens: list[str]) -> list[Any]:
    async def one(token: str) -> wire.Socket:
        user = _User(token)
        sock = await wire.connect(url, user, "json", 30)
        await user.hello
        return sock

    return list(await asyncio.gather(*(one(t) for t in tokens)))


async def library(url: str, tokens: list[str]) -> list[Any]:
    async def one(token: str) -> Any:
        ws = await connect(url, compression=None, ping_interval=None, open_timeout=30, proxy=None)
        await ws.send(orjson.dumps({"type": "auth", "id": 1, "data": {"token": token}}).decode())
        while orjson.loads(await ws.recv()).get("type") != "hello":
            pass
        return ws

    return list(await asyncio.gather(*(one(t) for t in tokens)))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(kind: str, url: str, tokens: list[str]) -> dict[str, float]:
    gc.collect()
    rss, cpu = procs.rss_kib(os.getpid()), _cpu()
    socks = await (lean if kind == "lean" else library)(url, tokens)
    connect_cpu = _cpu() - cpu
    rss_per = (procs.rss_kib(os.getpid()) - rss) / len(tokens)
    held = _cpu()
    await asyncio.sleep(HOLD_S)
    hold_cores = (_cpu() - held) / HOLD_S
    for sock in socks:
        if kind == "lean":
            sock.abort()
        else:
            await sock.close()
    await asyncio.sleep(1)
    return {
        "connect_cpu_s": round(connect_cpu, 3),
        "hold_cores": round(hold_cores, 4),
        "rss_per_socket_kib": round(rss_per, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m load_tests.benches.client_bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--sockets", type=int, default=2000)
    args = parser.parse_args(argv)
    raise_nofile()
    secret = secrets.token_urlsafe(32)
    hub = servers.start_hub("client-bench", secret, procs.RESULTS / "client-bench-hub.log")
    try:
        out = {}
        for kind in ("lean", "websockets"):
            tokens = [
                mint_session(
                    secret,
                    user_id=f"{kind}-{i}",
                    event_id="bench",
                    role="candidate",
                    now=time.time(),
                    ttl_s=3600,
                )
                for i in range(args.sockets)
            ]
            out[kind] = asyncio.run(measure(kind, hub.url, tokens))
        print(json.dumps({"sockets": args.sockets, **out}, indent=1))
    finally:
        hub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
