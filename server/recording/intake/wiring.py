"""The processing side of 100ms webhooks on one hub: the dispatcher (own rooms / relay / foreign) and the
inbox that feeds it. The HTTP route that stores them is server/api/webhooks.py."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from server.config import Settings
from server.hms.client import HmsClient
from server.metrics import WebhookMetrics
from server.recording.intake.dispatch import Dispatcher
from server.recording.intake.inbox import Handler, Inbox
from server.store.base import Store

log = logging.getLogger("proctorhub.recording")


@dataclass
class Webhooks:
    dispatcher: Dispatcher
    inbox: Inbox | None
    """None when HMS_WEBHOOK_WORKERS is 0: this node stores webhooks, other nodes process them."""

    async def start(self) -> None:
        await self.dispatcher.start()
        if self.inbox is not None:
            self.inbox.start()

    async def stop(self) -> None:
        if self.inbox is not None:
            await self.inbox.stop()
        await self.dispatcher.aclose()


def build_webhooks(
    settings: Settings, store: Store, hms: HmsClient | None, metrics: WebhookMetrics, handle: Handler
) -> Webhooks:
    dispatcher = Dispatcher(settings, store, hms, handle, metrics)
    inbox = None
    if settings.hms_webhook_workers == 0 and settings.store_kind == "memory":
        log.warning("HMS_WEBHOOK_WORKERS=0 without REDIS_URL: webhooks are stored and never processed")
    if settings.hms_webhook_workers > 0:
        inbox = Inbox(
            store.webhooks,
            store.dedupe,
            dispatcher,
            consumer=settings.node_id,
            metrics=metrics,
            workers=settings.hms_webhook_workers,
        )
    return Webhooks(dispatcher, inbox)
