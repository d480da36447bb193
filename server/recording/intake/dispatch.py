"""What the inbox does with each stored event: our rooms' events go to the monitor's handler, other
environments' are forwarded to their hub (same body, same secret header), the rest are counted.

A forward that fails raises `RelayError`: the inbox retries it with its backoff (about a minute), then
parks it, so a relay survives a restart of this hub (the entry stays in the durable queue until acked).
"""

from __future__ import annotations

import logging

import httpx

from server.config import Settings
from server.hms.client import HmsClient
from server.metrics import WebhookMetrics
from server.recording.intake.envelope import Envelope
from server.recording.intake.inbox import Handler, RetryLater
from server.recording.intake.room_owners import RoomDirectory, RoomRouter
from server.store.base import Store

log = logging.getLogger("proctorhub.recording.relay")

RELAY_TIMEOUT_S = 10.0


class RelayError(RetryLater):
    """Another environment's hub did not take a forwarded webhook (retried, then parked)."""


class Dispatcher:
    """The inbox's handler: route by room, then handle, forward or count."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        hms: HmsClient | None,
        handle: Handler,
        metrics: WebhookMetrics,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._router = RoomRouter(settings.hms_room_prefix, settings.hms_webhook_relay)
        self._rooms = RoomDirectory(store.webhooks, hms)
        self._handle = handle
        self._metrics = metrics
        self._headers = {"Content-Type": "application/json"}
        if settings.hms_webhook_secret:
            self._headers[settings.hms_webhook_header] = settings.hms_webhook_secret
        self._transport = transport
        self._http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=RELAY_TIMEOUT_S, transport=self._transport)

    async def aclose(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    async def __call__(self, envelope: Envelope) -> None:
        await self._rooms.learn(envelope)
        owner = self._router.owner(await self._rooms.name_of(envelope))
        if owner.kind == "own":
            await self._handle(envelope)
        elif owner.kind == "relay":
            await self._forward(envelope, str(owner.prefix), str(owner.url))
        else:
            self._metrics.foreign.inc()
            log.debug("webhook %s %s is for no known environment's room", envelope.type, envelope.id)

    async def _forward(self, envelope: Envelope, prefix: str, url: str) -> None:
        if self._http is None:
            raise RelayError("the relay is not started")
        try:
            answer = await self._http.post(url, content=envelope.raw, headers=self._headers)
        except httpx.HTTPError as exc:
            self._metrics.relay_errors.labels(prefix).inc()
            raise RelayError(f"relay to {prefix} ({url}) failed: {type(exc).__name__}: {exc}") from exc
        if answer.status_code != 200:
            self._metrics.relay_errors.labels(prefix).inc()
            raise RelayError(f"relay to {prefix} ({url}) answered {answer.status_code}")
        self._metrics.relayed.labels(prefix).inc()
