"""The allocation over HTTP: `GET .../rooms` (admins and the event's proctors), `POST .../rebalance`."""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server.api.errors import ApiError
from server.api.security import caller

log = logging.getLogger("proctorhub.api.allocation")

REBALANCE_TIMEOUT_S = 30.0


async def event_id_of(request: Request) -> str:
    event_id: str = request.path_params["event_id"]
    if await request.app.state.store.events.get_event(event_id) is None:
        raise ApiError(404, "not_found", f"event {event_id!r} does not exist")
    return event_id


async def rooms(request: Request) -> JSONResponse:
    who = await caller(request)
    who.require_reader(request.path_params["event_id"])
    event_id = await event_id_of(request)
    return JSONResponse(await request.app.state.hub.rooms.allocation(event_id))


async def rebalance(request: Request) -> JSONResponse:
    """Plan the event now (e.g. after a PATCH of N, M or L) and answer with the allocation."""
    who = await caller(request)
    who.require_admin(request.path_params["event_id"])
    event_id = await event_id_of(request)
    service = request.app.state.hub.rooms
    try:
        await asyncio.wait_for(service.request(event_id), REBALANCE_TIMEOUT_S)
    except TimeoutError:
        raise ApiError(503, "busy", f"no allocation pass finished within {REBALANCE_TIMEOUT_S:g} s") from None
    except Exception:  # the cause (a store error, a bug) is for the log, not the caller
        log.exception("rebalance of %s failed", event_id)
        raise ApiError(503, "allocation_failed", "the allocation pass failed; try again") from None
    return JSONResponse(await service.allocation(event_id))


routes = [
    Route("/api/v1/events/{event_id}/rooms", rooms, methods=["GET"]),
    Route("/api/v1/events/{event_id}/rebalance", rebalance, methods=["POST"]),
]
