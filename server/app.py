"""create_app(settings) -> Starlette: routes, and a lifespan that starts and stops the parts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route, WebSocketRoute

from server.api import (
    allocation,
    archive_files,
    backfill,
    deliveries,
    events,
    health,
    pages,
    recordings,
    timelines,
)
from server.api.client_address import TrustedProxies
from server.api.errors import exception_handlers
from server.api.webhooks import WebhookIntake
from server.config import Settings, check_bind, load_settings
from server.hms.wiring import Hms, build_hms
from server.hostevents.metrics import HostEventMetrics
from server.hostevents.wiring import HostEventsPart
from server.hubs import Hub
from server.hubs.connection import Connection
from server.hubs.endpoint import HubEndpoint
from server.lti import registration as lti_registration
from server.lti.tool import LtiTool
from server.protocol import Outbound
from server.recording.archive.archiver import Archiver
from server.recording.archive.contract import Archive
from server.recording.archive.factory import build_archive
from server.recording.archive.sources import simulator_policy
from server.recording.backfill.checks import Limits
from server.recording.backfill.plan import Rules as BackfillRules
from server.recording.backfill.requests import BackfillRequests
from server.recording.backfill.service import BackfillLinks, BackfillService, UploadTarget
from server.recording.intake.wiring import build_webhooks
from server.recording.monitor.compaction import Budget
from server.recording.monitor.live import MonitorLinks, RecordingMonitor
from server.recording.monitor.timeline import Rules
from server.store import create_store
from server.store.records import EventConfig
from server.verifier import SessionVerifier

log = logging.getLogger("proctorhub.app")

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
DEMO_EVENT = EventConfig(event_id="demo", name="Demo exam", expected_candidates=20)
SHUTDOWN_SHARE = 0.45
"""Of HUB_SHUTDOWN_S, what uvicorn has to close the sockets, and what the parts have to stop: a tenth
is left for the interpreter's own teardown before the deadline (server/serve.py) ends the process."""


async def stop_all(budget_s: float, *steps: tuple[str, Callable[[], Awaitable[object]]]) -> None:
    """Stop the parts in order within `budget_s` in all: a step that overruns its share is abandoned
    (logged), so a deploy never waits on a stuck dependency. uvicorn had as long (SHUTDOWN_SHARE of
    HUB_SHUTDOWN_S) to close the sockets."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget_s
    for index, (name, step) in enumerate(steps):
        left = deadline - loop.time()
        share = max(0.5, left / (len(steps) - index) * 2)  # a step may use twice its fair share
        task = asyncio.ensure_future(step())
        done, _ = await asyncio.wait({task}, timeout=min(share, max(left, 0.5)))
        if not done:
            # not wait_for: it waits for the cancelled step to end, and one that swallows its
            # cancellation (redis-py turns it into its own error) would hold the shutdown forever
            task.cancel()
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # read: never "never retrieved"
            log.warning("shutdown: %s did not stop in %.1fs; going on", name, share)
        elif not task.cancelled() and task.exception() is not None:
            log.error("shutdown: %s failed to stop; going on", name, exc_info=task.exception())


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
    rules = Rules(settings.gap_threshold_s, settings.recording_deadline_s, settings.backfill_slack_s)
    budget = Budget(settings.signal_budget, settings.signal_keep, min_run_s=settings.gap_threshold_s)
    monitor = RecordingMonitor(links, rules, hms=hms.client, reconcile_s=settings.reconcile_s, budget=budget)
    hub.presence.on_change(monitor.presence_changed)
    hub.handlers.media_observers.append(monitor.media)
    hub.handlers.observed_observers.append(monitor.observed)

    async def alerts(conn: Connection) -> list[Outbound]:
        return [] if conn.session is None else await monitor.state_sync(conn.session)

    hub.state_sync.add("alerts", alerts)
    return monitor


def build_backfill(
    settings: Settings, hub: Hub, monitor: RecordingMonitor, archive: Archive
) -> BackfillService:
    """Browser backfill (extension E15): requests after each evaluation and on (re)connect, and the
    service behind the upload endpoints."""
    rules = BackfillRules(
        min_s=settings.backfill_min_s,
        slack_s=settings.backfill_slack_s,
        extend_s=settings.backfill_extend_s,
        release_step_s=settings.backfill_release_step_s,
    )
    requests = BackfillRequests(hub.store.backfill, hub.fanout.publish, rules)
    monitor.on_evaluated(requests.evaluated)

    async def sync(conn: Connection) -> list[Outbound]:
        return [] if conn.session is None else await requests.state_sync(conn.session)

    hub.state_sync.add("backfill", sync, independent=True)  # a candidate's own requests

    async def local(event_id: str, candidate_id: str, held: dict[str, Any]) -> None:
        if await requests.local(event_id, candidate_id, held, hub.clock()):
            await monitor.check(event_id, candidate_id)

    hub.handlers.local_observers.append(local)
    links = BackfillLinks(
        store=hub.store.backfill,
        archive=cast(UploadTarget, archive),
        requests=requests,
        timeline_of=monitor.timeline,
        add_signals=monitor.add,
        clock=hub.clock,
        secret=settings.hub_secret,
        check_at=monitor.check_at,
    )
    limits = Limits(
        settings.backfill_max_bytes, settings.backfill_segment_max_s, settings.backfill_duration_tolerance_s
    )
    return BackfillService(links, limits, upload_ttl_s=settings.backfill_upload_ttl_s)


def build_host_events(settings: Settings, hub: Hub, monitor: RecordingMonitor) -> HostEventsPart:
    """Events to the host app, fed by the monitor's alerts, the hub's flags and finished candidates."""
    part = HostEventsPart(
        settings,
        hub.store,
        HostEventMetrics(hub.metrics.registry),
        timeline_of=monitor.timeline,
        clock=hub.clock,
        on_failure=hub.metrics.background_failed,
        threshold_s=monitor.rules.threshold_s,
    )
    monitor.on_alerts(part.alerts_changed)
    hub.handlers.flag_observers.append(part.flag_added)
    hub.presence.on_change(part.presence_changed)
    return part


def create_app(settings: Settings) -> Starlette:
    store = create_store(settings)
    hms = build_hms(settings)
    sessions = SessionVerifier(settings)
    hub = Hub(settings, store, hms.rooms, verifier=sessions)
    monitor = build_monitor(settings, hub, hms)
    storage = hms.simulator.config.storage if hms.simulator is not None else None
    archive = build_archive(settings, simulator_policy(settings, storage) if hms.simulator else None)
    archiver = Archiver(
        archive, store.presence, monitor.timeline, hub.clock, on_refused=hub.metrics.archive_source_refused
    )
    monitor.on_change(archiver.changed)
    backfill_service = build_backfill(settings, hub, monitor, archive)
    hub.handlers.flag_observers.append(lambda flag: archiver.changed(flag.event_id, flag.candidate_id))
    host_events = build_host_events(settings, hub, monitor)
    webhooks = build_webhooks(settings, store, hms.client, hub.metrics.webhooks, handle=monitor.webhook)
    lti = LtiTool(settings, store, hub, WEB_DIR / "lti-launch.html")
    monitor.on_change(lti.policy.changed)  # alerts of LTI candidates become ACS flags and extra time
    hub.handlers.flag_observers.append(lti.policy.flag_added)  # so may proctors' flags

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.start()
        await hms.start()
        await archive.start()
        await lti.start()
        if settings.embedded_secret:
            await store.events.create_event(DEMO_EVENT)
        await sessions.start()
        await hub.start()
        await monitor.start()
        await webhooks.start()
        await host_events.start()
        log.info("proctorhub node %s ready (store: %s)", settings.node_id, settings.store_kind)
        try:
            yield
        finally:
            await stop_all(
                settings.shutdown_s * SHUTDOWN_SHARE,
                ("webhook inbox", webhooks.stop),  # stop taking work; what is held stays in the store
                ("hub", hub.stop),  # sockets, leases and presence handed back
                ("recording monitor", monitor.stop),  # after the hub: it records the presence changes
                ("lti", lti.stop),  # after the monitor, whose alerts it flags
                ("host events", host_events.stop),  # after the producers; what is queued stays stored
                ("archiver", archiver.stop),
                ("archive", archive.aclose),
                ("session verifier", sessions.stop),
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
        *backfill.routes,
        *deliveries.routes,
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
        middleware=[
            Middleware(TrustedProxies, trusted=settings.trusted_proxies),
            Middleware(pages.SecurityHeaders, settings=settings),
        ],
    )
    app.state.settings = settings
    app.state.store = store
    app.state.hub = hub
    app.state.sessions = sessions
    app.state.presence_counts = health.PresenceCounts()
    app.state.monitor = monitor
    app.state.hms = hms
    app.state.archive = archive
    app.state.backfill = backfill_service
    app.state.inbox = webhooks.inbox
    app.state.lti = lti
    app.state.host_events = host_events
    hms.bind_app(app)
    return app


def create_app_from_env() -> Starlette:
    """For `uvicorn --factory server.app:create_app_from_env`. The bind address is not known here, so it
    is taken as public: HUB_SECRET and HMS_API_BASE are required (check_bind)."""
    settings = load_settings()
    check_bind(settings, None)
    return create_app(settings)
