"""Shared parts of the simulator tests (this module holds no tests).

- `serve(app)`: a Starlette app under uvicorn on a free loopback port, in a background task.
- `Receiver`: a webhook receiver that records every request and can answer non-200 first.
- `running(**config)`: a started `Simulator` with an `httpx.AsyncClient` on its ASGI app.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.hms.simulator import Simulator, SimulatorConfig
from server.hms.tokens import mint_app_token, mint_management_token
from tests.servers import free_port

ACCESS_KEY = "sim-access-key-0001"
SECRET = "sim-secret-" + "s" * 32
WEBHOOK_HEADER = "X-Proctorhub-Webhook-Secret"
WEBHOOK_SECRET = "webhook-secret-0123456789"


@contextlib.asynccontextmanager
async def serve(app: Any, port: int | None = None, **options: Any) -> AsyncIterator[str]:
    """Run `app` under uvicorn on `port` (default: a free one); yield its base URL; stop it at the end.
    `options`: more of uvicorn's settings (`ws=...`, `lifespan="off"`)."""
    settings: dict[str, Any] = {"lifespan": "on", "log_level": "warning", **options}
    config = uvicorn.Config(app, host="127.0.0.1", port=port or free_port(), **settings)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn exited before it started")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class Received:
    at: float
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Receiver:
    """Records webhook POSTs; the first `fail_first` tries of each event id get `fail_status`,
    and the first `slow_first` tries are answered only after `slow_s`."""

    fail_first: int = 0
    fail_status: int = 503
    slow_first: int = 0
    slow_s: float = 0.0
    requests: list[Received] = field(default_factory=list)
    _tries: Counter[str] = field(default_factory=Counter)

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = json.loads(await request.body())
            self.requests.append(Received(time.monotonic(), dict(request.headers), body))
            self._tries[body["id"]] += 1
            if self._tries[body["id"]] <= self.slow_first:
                await asyncio.sleep(self.slow_s)
            if self._tries[body["id"]] <= self.fail_first:
                return JSONResponse({"error": "not now"}, status_code=self.fail_status)
            return JSONResponse({"success": True})

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        return [r.body for r in self.requests if event_type is None or r.body["type"] == event_type]

    def types(self) -> list[str]:
        return [r.body["type"] for r in self.requests]


@contextlib.asynccontextmanager
async def receiving(receiver: Receiver, port: int | None = None) -> AsyncIterator[str]:
    """`receiver` under uvicorn; yields its webhook URL."""
    async with serve(receiver.app(), port) as base:
        yield f"{base}/hook"


@dataclass
class Harness:
    sim: Simulator
    http: httpx.AsyncClient

    @property
    def config(self) -> SimulatorConfig:
        return self.sim.config

    def auth(self, **kw: Any) -> dict[str, str]:
        token, _ = mint_management_token(
            access_key=kw.get("access_key", ACCESS_KEY),
            secret=kw.get("secret", SECRET),
            ttl_s=kw.get("ttl_s", 3600),
            now=kw.get("now", time.time()),
        )
        return {"Authorization": f"Bearer {token}"}

    def app_token(self, room_id: str, user_id: str, role: str = "candidate", **kw: Any) -> str:
        return mint_app_token(
            access_key=kw.get("access_key", ACCESS_KEY),
            secret=kw.get("secret", SECRET),
            room_id=room_id,
            user_id=user_id,
            role=role,
            ttl_s=kw.get("ttl_s", 3600),
            now=kw.get("now", time.time()),
        ).token

    async def create_room(self, name: str, **body: Any) -> dict[str, Any]:
        answer = await self.http.post("/v2/rooms", json={"name": name, **body}, headers=self.auth())
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def join(self, room_id: str, user_id: str, role: str = "candidate", **kw: Any) -> dict[str, Any]:
        token = self.app_token(room_id, user_id, role, **kw)
        answer = await self.http.post("/media/join", json={"token": token, "user_name": user_id.title()})
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def media(self, peer_id: str, action: str, **body: Any) -> httpx.Response:
        return await self.http.post(f"/media/peers/{peer_id}/{action}", json=body)

    async def peer(self, peer_id: str) -> dict[str, Any]:
        answer = await self.http.get(f"/media/peers/{peer_id}")
        assert answer.status_code == 200, answer.text
        return answer.json()


@contextlib.asynccontextmanager
async def running(**config: Any) -> AsyncIterator[Harness]:
    """A started simulator (fast timings unless overridden) and a client on its ASGI app."""
    settings: dict[str, Any] = {
        "access_key": ACCESS_KEY,
        "secret": SECRET,
        "webhook_retry_delays": (0.1, 0.3, 1.0),
        "recording_delay_s": 0.05,
        "reconnect_window_s": 0.5,
        "webhook_concurrency": 1,
    }
    settings.update(config)
    sim = Simulator(SimulatorConfig(**settings))
    await sim.start()
    try:
        transport = httpx.ASGITransport(app=sim.asgi_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
            yield Harness(sim, http)
    finally:
        await sim.stop()
