"""create_app(settings) -> Starlette: routes, and a lifespan that starts and stops the parts."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route, WebSocketRoute

from server import web
from server.api import events, health, rooms
from server.api.errors import exception_handlers
from server.config import Settings, load_settings
from server.hms.wiring import build_hms
from server.hubs import Hub
from server.hubs.endpoint import HubEndpoint
from server.store import create_store
from server.store.base import EventConfig

log = logging.getLogger("proctorhub.app")

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
DEMO_EVENT = EventConfig(event_id="demo", name="Demo exam", expected_candidates=20)


def create_app(settings: Settings) -> Starlette:
    store = create_store(settings)
    hms = build_hms(settings)
    hub = Hub(settings, store, hms.rooms)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.start()
        await hms.start()
        if settings.embedded_secret:
            await store.create_event(DEMO_EVENT)
        await hub.start()
        log.info("proctorhub node %s ready (store: %s)", settings.node_id, settings.store_kind)
        try:
            yield
        finally:
            await hub.stop()
            await hms.stop()
            await store.close()

    routes: list[Route | WebSocketRoute | Mount] = [
        WebSocketRoute("/ws", HubEndpoint(hub)),
        *health.routes,
        *events.routes,
        *rooms.routes,
    ]
    if hms.simulator is not None:
        # The simulator's media plane (and /_sim controls) for simulated clients and the pages.
        routes.append(Mount("/hms-sim", app=hms.simulator.asgi_app))
    if WEB_DIR.is_dir():
        routes += web.routes(settings, WEB_DIR)
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers=exception_handlers,
        middleware=[Middleware(web.SecurityHeaders, settings=settings)],
    )
    app.state.settings = settings
    app.state.store = store
    app.state.hub = hub
    app.state.hms = hms
    return app


def create_app_from_env() -> Starlette:
    """For `uvicorn --factory server.app:create_app_from_env`."""
    return create_app(load_settings())
