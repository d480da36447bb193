"""create_app(settings) -> Starlette: routes, and a lifespan that starts and stops the parts."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route, WebSocketRoute

from server.api import allocation, archive_files, events, health, pages, recordings, timelines
from server.api.errors import exception_handlers
from server.config import Settings, load_settings
from server.hms.wiring import build_hms
from server.hubs import Hub
from server.hubs.endpoint import HubEndpoint
from server.recording.archive.archiver import Archiver
from server.recording.archive.factory import build_archive
from server.recording.intake.wiring import build_webhooks
from server.recording.monitor.live import RecordingMonitor
from server.recording.monitor.timeline import Rules
from server.store import create_store
from server.store.base import EventConfig

log = logging.getLogger("proctorhub.app")

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
DEMO_EVENT = EventConfig(event_id="demo", name="Demo exam", expected_candidates=20)


def create_app(settings: Settings) -> Starlette:
    store = create_store(settings)
    hms = build_hms(settings)
    hub = Hub(settings, store, hms.rooms)
    rules = Rules(settings.gap_threshold_s, settings.recording_deadline_s)
    monitor = RecordingMonitor(hub, rules, hms=hms.client, reconcile_s=settings.reconcile_s)
    archive = build_archive(settings)
    archiver = Archiver(archive, store, monitor.timeline, hub.clock)
    monitor.on_change(archiver.changed)
    hub.flag_observers.append(archiver.changed)
    webhooks = build_webhooks(settings, store, hms.client, hub.metrics.webhooks, handle=monitor.webhook)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.start()
        await hms.start()
        await archive.start()
        if settings.embedded_secret:
            await store.create_event(DEMO_EVENT)
        await hub.start()
        await monitor.start()
        await webhooks.start()
        log.info("proctorhub node %s ready (store: %s)", settings.node_id, settings.store_kind)
        try:
            yield
        finally:
            await webhooks.stop()
            await monitor.stop()
            await hub.stop()
            await archiver.stop()
            await archive.aclose()
            await hms.stop()
            await store.close()

    routes: list[Route | WebSocketRoute | Mount] = [
        WebSocketRoute("/ws", HubEndpoint(hub)),
        *health.routes,
        *events.routes,
        *allocation.routes,
        *timelines.routes,
        *recordings.routes,
        *archive_files.routes,
        *webhooks.routes,
    ]
    if hms.simulator is not None:
        # The simulator's media plane (and /_sim controls) for simulated clients and the pages.
        routes.append(Mount("/hms-sim", app=hms.simulator.asgi_app))
    if WEB_DIR.is_dir():
        routes += pages.routes(settings, WEB_DIR)
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers=exception_handlers,
        middleware=[Middleware(pages.SecurityHeaders, settings=settings)],
    )
    app.state.settings = settings
    app.state.store = store
    app.state.hub = hub
    app.state.monitor = monitor
    app.state.hms = hms
    app.state.archive = archive
    app.state.inbox = webhooks.inbox
    hms.bind_app(app)
    return app


def create_app_from_env() -> Starlette:
    """For `uvicorn --factory server.app:create_app_from_env`."""
    return create_app(load_settings())
