"""Liveness, readiness and Prometheus metrics.

/metrics needs the API key when one is set (it tells anyone how many users are online, and where the
hub struggles). Its presence counts cover every user of every event (counted by the store, see
`PresenceStore.count_users`), so they are computed at most once per PRESENCE_COUNT_EVERY_S however
often it is scraped (several scrapers, a hot loop)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from server.api.security import require_api_key
from server.store.base import Store

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


PRESENCE_COUNT_EVERY_S = 1.0


class PresenceCounts:
    """The users of every event by (role, presence), recounted at most once per `every_s`; scrapes in
    the meantime (or waiting on the recount) get the last figures."""

    def __init__(
        self, every_s: float = PRESENCE_COUNT_EVERY_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._every_s = every_s
        self._clock = clock
        self._counted_at = -float("inf")
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = asyncio.Lock()

    async def get(self, store: Store) -> Counter[tuple[str, str]]:
        async with self._lock:
            if self._clock() - self._counted_at >= self._every_s:
                self._counted_at = self._clock()
                self._counts = await _count(store)
        return self._counts


async def _count(store: Store) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for event in await store.events.list_events():
        counts.update(await store.presence.count_users(event.event_id))
    return counts


async def metrics(request: Request) -> Response:
    require_api_key(request)
    state = request.app.state
    hub = state.hub
    try:
        hub.metrics.set_presence(await state.presence_counts.get(state.store))
    except Exception as exc:
        log.warning("metrics: presence counts unavailable: %s", exc)
    return PlainTextResponse(hub.metrics.render(), media_type="text/plain; version=0.0.4")


routes = [
    Route("/healthz", healthz),
    Route("/readyz", readyz),
    Route("/metrics", metrics),
]
