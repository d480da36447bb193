"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging
from collections import Counter

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

log = logging.getLogger("proctorhub.api.health")


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok", "node": request.app.state.settings.node_id})


async def readyz(request: Request) -> Response:
    hub = request.app.state.hub
    if hub.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    try:
        await request.app.state.store.ping()
    except Exception as exc:
        log.warning("readiness: store unreachable: %s", exc)
        return JSONResponse({"status": "store unreachable"}, status_code=503)
    return JSONResponse({"status": "ready", "store": request.app.state.settings.store_kind})


async def metrics(request: Request) -> Response:
    store = request.app.state.store
    hub = request.app.state.hub
    counts: Counter[tuple[str, str]] = Counter()
    try:
        for event in await store.events.list_events():
            counts.update((u.role, u.presence) for u in await store.presence.list_users(event.event_id))
    except Exception as exc:
        log.warning("metrics: presence counts unavailable: %s", exc)
    hub.metrics.set_presence(counts)
    return PlainTextResponse(hub.metrics.render(), media_type="text/plain; version=0.0.4")


routes = [
    Route("/healthz", healthz),
    Route("/readyz", readyz),
    Route("/metrics", metrics),
]
