"""Which 100ms the hub talks to: the real API (HMS_API_BASE) or the in-process simulator."""

from __future__ import annotations

import os
from dataclasses import dataclass

import httpx

from server.config import Settings
from server.hms.client import HmsClient
from server.hms.rooms import HmsRoomFactory
from server.hms.simulator import Simulator, config_from_env
from server.hms.tokens import ManagementTokens

SIMULATOR_BASE = "http://hms-simulator.internal/v2"
"""Base URL of the in-process simulator; requests never leave the process (ASGI transport)."""


@dataclass
class Hms:
    client: HmsClient
    rooms: HmsRoomFactory
    simulator: Simulator | None

    async def start(self) -> None:
        if self.simulator is not None:
            await self.simulator.start()

    async def stop(self) -> None:
        await self.client.aclose()
        if self.simulator is not None:
            await self.simulator.stop()


def build_hms(settings: Settings) -> Hms:
    tokens = ManagementTokens(settings.hms_access_key, settings.hms_secret)
    simulator: Simulator | None = None
    if settings.hms_api_base is None:
        simulator = Simulator(config_from_env(settings, os.environ))
        client = HmsClient(SIMULATOR_BASE, tokens, transport=httpx.ASGITransport(app=simulator.asgi_app))
    else:
        client = HmsClient(settings.hms_api_base, tokens)
    return Hms(client, HmsRoomFactory(client, settings), simulator)
