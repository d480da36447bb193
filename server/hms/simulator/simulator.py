"""`Simulator`: one simulated 100ms workspace (REST API, media plane, webhooks, recordings, faults).

    sim = Simulator(SimulatorConfig(access_key=..., secret=..., webhook_url=...))
    await sim.start()          # webhook workers; idempotent (the ASGI lifespan calls it too)
    app = sim.asgi_app         # /v2 (REST), /media (simulated clients), /_sim (control, no auth)
    ...
    await sim.stop()           # cancels timers and retries, closes HTTP and S3 clients

`/_sim` needs no auth: run the simulator on loopback only (see docs/simulator.md).
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Mount

from server.hms.simulator import control, media, rest
from server.hms.simulator.config import SimulatorConfig
from server.hms.simulator.errors import exception_handlers
from server.hms.simulator.faults import FaultRule, Faults, Injection, Occasion
from server.hms.simulator.presence import Presence
from server.hms.simulator.recorder import Recorder
from server.hms.simulator.storage import make_storage
from server.hms.simulator.tasks import Tasks
from server.hms.simulator.webhooks import Delivery, WebhookSender, envelope
from server.hms.simulator.workspace import Workspace

log = logging.getLogger("proctorhub.hms.simulator")


class Simulator:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.clock = config.clock
        self.workspace = Workspace(template_id=config.template_id, template_region=config.region)
        self.faults = Faults(random.Random(config.seed), self.clock)
        self.storage = make_storage(config.storage)
        self.tasks = Tasks()
        self.events: list[dict[str, Any]] = []
        self.webhooks = WebhookSender(
            retry_delays=config.webhook_retry_delays,
            timeout_s=config.webhook_timeout_s,
            concurrency=config.webhook_concurrency,
            faults=self.faults,
            tasks=self.tasks,
            clock=self.clock,
            transport=config.webhook_transport,
        )
        self.recorder = Recorder(
            workspace=self.workspace,
            storage=self.storage,
            faults=self.faults,
            tasks=self.tasks,
            emit=self.emit,
            clock=self.clock,
            delay_s=config.recording_delay_s,
        )
        self.presence = Presence(
            config=config,
            workspace=self.workspace,
            recorder=self.recorder,
            faults=self.faults,
            tasks=self.tasks,
            emit=self.emit,
            clock=self.clock,
        )
        self._started = False
        self.asgi_app = self._build_app()

    # lifecycle

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.tasks.reopen()
        self.webhooks.start()
        log.info("100ms simulator started (access key %s)", self.config.access_key)

    @property
    def started(self) -> bool:
        return self._started

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        await self.tasks.close()
        await self.webhooks.aclose()
        await self.storage.aclose()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _build_app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        routes = [
            Mount("/v2", routes=rest.routes(self)),
            Mount("/media", routes=media.routes(self)),
            Mount("/_sim", routes=control.routes(self)),
        ]
        app = Starlette(routes=routes, exception_handlers=exception_handlers, lifespan=lifespan)
        app.state.simulator = self
        return app

    # webhooks

    def emit(self, event_type: str, room_id: str, data: dict[str, Any]) -> dict[str, Any]:
        """Build the §3.2 envelope and send it to the room's webhook, else the workspace's (§5 item 1)."""
        c = self.config
        event = envelope(
            app_id=c.app_id,
            account_id=c.account_id,
            template_id=c.template_id,
            event_type=event_type,
            data=data,
            now=self.clock(),
        )
        self.events.append(event)
        room = self.workspace.rooms.get(room_id)
        if room is not None and room.webhook is not None:
            url, headers = room.webhook["url"], room.webhook.get("headers") or {}
        else:
            url, headers = c.webhook_url, c.webhook_headers
        occasion = Occasion(
            room_id=room_id,
            session_id=data.get("session_id"),
            peer_id=data.get("peer_id") or None,
            user_id=data.get("user_id") or None,
            event_id=event["id"],
            event_type=event_type,
        )
        self.webhooks.send(event, url=url, headers=headers, occasion=occasion)
        return event

    # fault injection (the same as POST /_sim/faults)

    def add_fault(
        self,
        kind: str,
        *,
        room_id: str | None = None,
        peer_id: str | None = None,
        user_id: str | None = None,
        event_type: str | None = None,
        path_prefix: str | None = None,
        count: int | None = None,
        probability: float | None = None,
        seconds: float = 0.0,
    ) -> FaultRule:
        """Add a fault rule (see faults.KINDS); it fires `count` times, with `probability`, or always."""
        rule = FaultRule(
            kind=kind,
            room_id=room_id,
            peer_id=peer_id,
            user_id=user_id,
            event_type=event_type,
            path_prefix=path_prefix,
            count=count,
            probability=probability,
            seconds=seconds,
        )
        return self.faults.add(rule)

    def remove_fault(self, rule_id: str) -> bool:
        return self.faults.remove(rule_id)

    def clear_faults(self) -> None:
        self.faults.clear()

    @property
    def injected(self) -> list[Injection]:
        """Every fault that fired, in order: time, kind, room, session, peer, user, event, path."""
        return self.faults.injected

    @property
    def deliveries(self) -> list[Delivery]:
        """Every webhook delivery attempt and its outcome."""
        return self.webhooks.deliveries
