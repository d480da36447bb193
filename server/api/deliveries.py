"""The outbox of events to the host app over HTTP (API key or admin of every event).

GET  /api/v1/deliveries?state=pending|delivered|dead&limit=N   newest first, with counts by state
GET  /api/v1/deliveries/{id}                                    one, with its payload
POST /api/v1/deliveries/{id}/retry                              due again now: 202; 409 while sending
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server.api.errors import ApiError
from server.api.security import caller
from server.recording.monitor.intervals import epoch_ms
from server.store.outbox import STATES, Delivery, Outbox

MAX_LIMIT = 1000


def delivery_json(delivery: Delivery, *, now: float, payload: bool = False) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "delivery_id": delivery.delivery_id,
        "message_id": delivery.message_id,
        "event_id": delivery.event_id,
        "type": delivery.type,
        "url": delivery.url,
        "state": delivery.state,
        "attempts": delivery.attempts,
        "created_at": epoch_ms(delivery.created_at),
        "next_attempt_at": epoch_ms(delivery.next_at) if delivery.state == "pending" else None,
        "last_attempt_at": epoch_ms(delivery.last_at),
        "last_status": delivery.last_status,
        "last_answer": delivery.last_answer,
        "delivered_at": epoch_ms(delivery.delivered_at),
        "sending": delivery.claimed_until is not None and delivery.claimed_until > now,
    }
    if payload:
        shown["payload"] = orjson.loads(delivery.body)
    return shown


def _now(request: Request) -> float:
    clock = request.app.state.hub.clock
    return float(clock())


def _outbox(request: Request) -> Outbox:
    outbox: Outbox = request.app.state.store.outbox
    return outbox


async def _admin(request: Request) -> None:
    (await caller(request)).require_admin(None)


def _limit(raw: str | None) -> int:
    if raw is None:
        return 100
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError(400, "invalid", f"limit: must be an integer between 1 and {MAX_LIMIT}")
    return int(raw)


async def list_deliveries(request: Request) -> JSONResponse:
    await _admin(request)
    state = request.query_params.get("state")
    if state is not None and state not in STATES:
        raise ApiError(400, "invalid", f"state: must be one of {', '.join(STATES)}")
    outbox = _outbox(request)
    found = await outbox.list(state=state, limit=_limit(request.query_params.get("limit")))  # type: ignore[arg-type]
    return JSONResponse(
        {"deliveries": [delivery_json(d, now=_now(request)) for d in found], "counts": await outbox.counts()}
    )


async def _existing(outbox: Outbox, delivery_id: str) -> Delivery:
    found = await outbox.get(delivery_id)
    if found is None:
        raise ApiError(404, "not_found", f"delivery {delivery_id!r} does not exist")
    return found


async def get_delivery(request: Request) -> JSONResponse:
    await _admin(request)
    found = await _existing(_outbox(request), request.path_params["delivery_id"])
    return JSONResponse(delivery_json(found, now=_now(request), payload=True))


async def retry_delivery(request: Request) -> JSONResponse:
    await _admin(request)
    delivery_id: str = request.path_params["delivery_id"]
    outbox = _outbox(request)
    result = await outbox.retry(delivery_id, now=_now(request))
    if result == "unknown":
        raise ApiError(404, "not_found", f"delivery {delivery_id!r} does not exist")
    if result == "sending":
        raise ApiError(409, "conflict", f"delivery {delivery_id!r} is being sent; see its outcome first")
    return JSONResponse(
        delivery_json(await _existing(outbox, delivery_id), now=_now(request)), status_code=202
    )


routes = [
    Route("/api/v1/deliveries", list_deliveries, methods=["GET"]),
    Route("/api/v1/deliveries/{delivery_id}", get_delivery, methods=["GET"]),
    Route("/api/v1/deliveries/{delivery_id}/retry", retry_delivery, methods=["POST"]),
]
