"""create_app(settings) -> Starlette: routes, and a lifespan that starts and stops the parts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route, WebSocketRoute

from server.api import allocation, archive_files, events, health, pages, recordings, timelines
from server.api.errors import exception_handlers
from server.api.webhooks import WebhookIntake
from server.config import Settings, load_settings
from server.hms.wiring import Hms, build_hms
from server.hubs import Hub
from server.hubs.connection import Connection
from server.hubs.endpoint import HubEndpoint
from server.lti import registration as lti_registration
from server.lti.tool import LtiTool
from server.protocol import Outbound
from server.recording.archive.archiver import Archiver
from server.recording.archive.factory import build_archive
from server.recording.intake.wiring import build_webhooks
from server.recording.monitor.live import MonitorLinks, RecordingMonitor
from server.recording.monitor.timeline import Rules
from server.store import create_store
from server.store.records import EventConfig

log = logging.getLogger("proctorhub.app")

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
DEMO_EVENT = EventConfig(event_id="demo", name="Demo exam", expected_candidates=20)


async def stop_all(budget_s: float, *steps: tuple[str, Callable[[], Awaitable[object]]]) -> None:
    """Stop the parts in order within `budget_s` in all: a step that overruns its share is abandoned
    (logged), so a deploy never waits on a stuck dependency. uvicorn had the other half of
    HUB_SHUTDOWN_S to close the sockets."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget_s
    for index, (name, step) in enumerate(steps):
        left = deadline - loop.time()
        share = max(0.5, left / (len(steps) - index) * 2)  # a step may use twice its fair share
        try:
            await asyncio.wait_for(step(), min(share, max(left, 0.5)))
        except TimeoutError:
            log.warning("shutdown: %s did not stop in %.1fs; going on", name, share)
        except Exception:
            log.exception("shutdown: %s failed to stop; going on", name)


def build_monitor(settings: Settings, hub: Hub, hms: Hms) -> RecordingMonitor:
    """The recording monitor, fed by the hub's presence and media reports, publishing through its fan-out."""

    async def proctor_rooms(event_id: str, proctor_id: str) -> set[str]:
        return {r.room_id for r in await hub.rooms.proctor_rooms(event_id, proctor_id)}

    links = MonitorLinks(
        store=hub.store,
        publish=hub.fanout.publish,
        announce=hub.presence.announce,
        proctor_rooms=proctor_rooms,
        metrics=hub.metrics,
        clock=hub.clock,
        node_id=settings.node_id,
        candidate_role=settings.hms_candidate_role,
    )
    rules = Rules(settings.gap_threshold_s, settings.recording_deadline_s)
    monitor = RecordingMonitor(links, rules, hms=hms.client, reconcile_s=settings.reconcile_s)
    hub.presence.on_change(monitor.presence_changed)
    hub.handlers.media_observers.append(monitor.media)

    async def alerts(conn: Connection) -> list[Outbound]:
        return [] if conn.session is None else await monitor.state_sync(conn.session)

    hub.state_sync.add("alerts", alerts)
    return monitor


def create_app(settings: Settings) -> Starlette:
    store = create_store(settings)
    hms = build_hms(settings)
    hub = Hub(settings, store, hms.rooms)
    monitor = build_monitor(settings, hub, hms)
    archive = build_archive(settings)
    archiver = Archiver(archive, store.presence, monitor.timeline, hub.clock)
    monitor.on_change(archiver.changed)
    hub.handlers.flag_observers.append(archiver.changed)
    webhooks = build_webhooks(settings, store, hms.client, hub.metrics.webhooks, handle=monitor.webhook)
    lti = LtiTool(settings, store, hub, WEB_DIR / "lti-launch.html")
    monitor.on_change(lti.policy.changed)  # alerts of LTI candidates become ACS flags

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.start()
        await hms.start()
        await archive.start()
        await lti.start()
        if settings.embedded_secret:
            await store.events.create_event(DEMO_EVENT)
        await hub.start()
        await monitor.start()
        await webhooks.start()
        log.info("proctorhub node %s ready (store: %s)", settings.node_id, settings.store_kind)
        try:
            yield
        finally:
            await stop_all(
                settings.shutdown_s / 2,
                ("webhook inbox", webhooks.stop),  # stop taking work; what is held stays in the store
                ("hub", hub.stop),  # sockets, leases and presence handed back
                ("recording monitor", monitor.stop),  # after the hub: it records the presence changes
                ("lti", lti.stop),  # after the monitor, whose alerts it flags
                ("archiver", archiver.stop),
                ("archive", archive.aclose),
                ("100ms", hms.stop),
                ("store", store.close),
            )

    routes: list[Route | WebSocketRoute | Mount] = [
        WebSocketRoute("/ws", HubEndpoint(hub)),
        *health.routes,
        *events.routes,
        *allocation.routes,
        *timelines.routes,
        *recordings.routes,
        *archive_files.routes,
        *WebhookIntake(settings, store.webhooks, hub.metrics.webhooks).routes,
        # LTI Proctoring Services (docs/lti.md): the registry API and the tool's endpoints
        *lti_registration.routes,
        *lti.routes,
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
    app.state.lti = lti
    hms.bind_app(app)
    return app


def create_app_from_env() -> Starlette:
    """For `uvicorn --factory server.app:create_app_from_env`."""
    return create_app(load_settings())
