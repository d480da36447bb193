"""Shared parts of the webhook tests (no tests here): 100ms-shaped bodies and a hub's webhook metrics."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from tests.servers import HubProcess

HEADER = "X-Proctorhub-Webhook-Secret"
WEBHOOK_SECRET = "webhook-test-secret-0123456789"
AUTH = {HEADER: WEBHOOK_SECRET}


def event(
    event_type: str = "peer.join.success",
    *,
    room_id: str | None = "room-1",
    room_name: str | None = "proctorhub-ev1-1",
    event_id: str | None = None,
    **data: Any,
) -> dict[str, Any]:
    """A §3.2 envelope; `room_name=None` leaves it out, as recording events do."""
    body: dict[str, Any] = {**data}
    if room_id is not None:
        body["room_id"] = room_id
    if room_name is not None:
        body["room_name"] = room_name
    return {
        "version": "2.0",
        "id": event_id or str(uuid.uuid4()),
        "account_id": "acc-1",
        "app_id": "app-1",
        "timestamp": "2024-02-12T15:39:55Z",
        "type": event_type,
        "data": body,
    }


def encode(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body)


def post(
    hub: HubProcess, body: bytes | dict[str, Any], headers: Mapping[str, str | bytes] | None = None
) -> httpx.Response:
    content = encode(body) if isinstance(body, dict) else body
    return httpx.post(
        f"{hub.http}/webhooks/100ms", content=content, headers=AUTH if headers is None else headers
    )


def metrics(hub: HubProcess) -> dict[str, float]:
    """The hub's `proctorhub_webhooks_*` samples, without the `proctorhub_webhooks_` prefix and `_total`."""
    out: dict[str, float] = {}
    for line in hub.metrics_text().splitlines():
        if line.startswith("proctorhub_webhooks_") and "_created" not in line:
            name, _, value = line.rpartition(" ")
            out[name.removeprefix("proctorhub_webhooks_").replace("_total", "")] = float(value)
    return out
