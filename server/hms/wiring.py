"""Which 100ms the hub talks to: the real API (HMS_API_BASE) or the in-process simulator.

In embedded mode the simulator delivers its webhooks to this hub's own `/webhooks/100ms`, in-process
(ASGI transport, with the secret header), unless HMS_SIM_WEBHOOK_URL sends them elsewhere. The hub's
app is built after the simulator, so the transport goes through `HubApp`, bound by `create_app`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from server.config import Settings
from server.hms.client import HmsClient
from server.hms.room_factory import HmsRoomFactory
from server.hms.simulator import Simulator, config_from_env
from server.hms.tokens import ManagementTokens

SIMULATOR_BASE = "http://hms-simulator.internal/v2"
"""Base URL of the in-process simulator; requests never leave the process (ASGI transport)."""
HUB_WEBHOOK_URL = "http://hub.internal/webhooks/100ms"
"""Where the in-process simulator posts webhooks: this hub's own app, through an ASGI transport."""


class HubApp:
    """The hub's ASGI app, once `create_app` has built it and called `bind`."""

    def __init__(self) -> None:
        self._app: ASGIApp | None = None

    def bind(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            raise RuntimeError("the hub's app is not bound yet (Hms.bind_app)")
        await self._app(scope, receive, send)


@dataclass
class Hms:
    client: HmsClient
    rooms: HmsRoomFactory
    simulator: Simulator | None
    hub_app: HubApp | None = None
    """Set when the simulator delivers webhooks to this hub in-process."""

    def bind_app(self, app: ASGIApp) -> None:
        """The hub's app exists: the in-process simulator's webhooks can go to it."""
        if self.hub_app is not None:
            self.hub_app.bind(app)

    async def start(self) -> None:
        if self.simulator is not None:
            await self.simulator.start()

    async def stop(self) -> None:
        await self.client.aclose()
        if self.simulator is not None:
            await self.simulator.stop()


def build_hms(settings: Settings) -> Hms:
    tokens = ManagementTokens(settings.hms_access_key, settings.hms_secret)
    if settings.hms_api_base is not None:
        client = HmsClient(settings.hms_api_base, tokens)
        return Hms(client, HmsRoomFactory(client, settings), None)
    config = config_from_env(settings, os.environ)
    hub_app = None
    if config.webhook_url is None:
        hub_app = HubApp()
        transport = httpx.ASGITransport(app=hub_app)
        config = dataclasses.replace(config, webhook_url=HUB_WEBHOOK_URL, webhook_transport=transport)
    simulator = Simulator(config)
    client = HmsClient(SIMULATOR_BASE, tokens, transport=httpx.ASGITransport(app=simulator.asgi_app))
    return Hms(client, HmsRoomFactory(client, settings), simulator, hub_app)
