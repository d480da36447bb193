"""The baseline: a bare `websockets` asyncio server speaking just enough of the hub's protocol.

It accepts on `/ws` (no compression, pings every 20 s like the hub), verifies the first
frame's `auth` token (HS256, `BARE_SECRET`), answers `hello`, and relays candidates'
state to every non-candidate socket with `websockets.broadcast`: `candidate.status`
with presence `online` on connect, `reconnecting` on close, and `video` on each
`media.status`. No store, no queues, no presence rules: the floor the hub is held to.

Run: `BARE_SECRET=... python -m load_tests.benches.bare_server --port 8765`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import time
from typing import Any

import jwt
import orjson
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

WATCHERS: set[ServerConnection] = set()


def _frame(kind: str, data: dict[str, Any]) -> str:
    return orjson.dumps({"type": kind, "ts": int(time.time() * 1000), "data": data}).decode()


def _announce(state: dict[str, str]) -> None:
    if WATCHERS:
        broadcast(WATCHERS, _frame("candidate.status", state))


async def _authenticate(ws: ServerConnection, secret: str) -> dict[str, Any] | None:
    try:
        first = await asyncio.wait_for(ws.recv(), 5)
        message = orjson.loads(first)
        claims: dict[str, Any] = jwt.decode(message["data"]["token"], secret, algorithms=["HS256"])
    except (TimeoutError, ConnectionClosed):
        return None
    except (ValueError, KeyError, TypeError, jwt.PyJWTError):
        await ws.close(4401, "not authenticated")
        return None
    return claims


async def handler(ws: ServerConnection, secret: str) -> None:
    """One socket: auth, hello, then relay (candidate) or listen (proctor, admin)."""
    claims = await _authenticate(ws, secret)
    if claims is None:
        return
    user, role = str(claims["sub"]), str(claims["role"])
    await ws.send(
        _frame(
            "hello",
            {
                "user_id": user,
                "event_id": claims.get("event"),
                "role": role,
                "node": "bare",
                "heartbeat_s": 20,
            },
        )
    )
    if role != "candidate":
        WATCHERS.add(ws)
        try:
            await ws.wait_closed()
        finally:
            WATCHERS.discard(ws)
        return
    state = {"candidate_id": user, "presence": "online", "video": "unknown"}
    _announce(state)
    try:
        async for frame in ws:
            message = orjson.loads(frame)
            if message.get("type") == "media.status":
                data = message.get("data") or {}
                state["video"] = "on" if data.get("joined") and data.get("video") else "off"
                _announce(state)
    except ConnectionClosed:
        pass
    finally:
        state["presence"] = "reconnecting"
        _announce(state)


async def main(port: int, secret: str) -> None:
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)

    async def handle(ws: ServerConnection) -> None:
        await handler(ws, secret)

    async with serve(
        handle,
        "127.0.0.1",
        port,
        compression=None,
        ping_interval=20,
        ping_timeout=20,
        max_size=65536,
        backlog=2048,
    ):
        print(f"bare server on ws://127.0.0.1:{port}/ws", flush=True)
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.port, os.environ["BARE_SECRET"]))
