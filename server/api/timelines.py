"""The recording monitor over HTTP: a candidate's timeline, the event's alerts, and the report."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.api.allocation import event_id_of
from server.api.errors import ApiError
from server.api.security import caller
from server.recording.monitor.report import report_csv, report_json, report_row, timeline_json
from server.store.records import UserRecord


async def _candidate(request: Request, event_id: str) -> UserRecord:
    candidate_id = request.path_params["candidate_id"]
    user = await request.app.state.store.presence.get_user(event_id, candidate_id)
    if user is None or user.role != "candidate":
        raise ApiError(404, "not_found", f"no candidate {candidate_id!r} in event {event_id!r}")
    return user


async def timeline(request: Request) -> JSONResponse:
    who = await caller(request)
    who.require_reader(request.path_params["event_id"])
    event_id = await event_id_of(request)
    user = await _candidate(request, event_id)
    monitor, store = request.app.state.monitor, request.app.state.store
    found, flags, acs, backfill = await asyncio.gather(
        monitor.timeline(event_id, user.user_id),
        store.presence.list_flags(event_id, user.user_id),
        store.lti.acs_calls(event_id, user.user_id),
        request.app.state.backfill.overview(event_id, user.user_id),
    )
    now = request.app.state.hub.clock()
    body = timeline_json(user, found, flags, now=now, threshold_s=monitor.rules.threshold_s)
    body["acs"] = [call.to_dict() for call in acs]  # LTI Assessment Control calls and their answers
    body["backfill"] = backfill  # extension E15: what the page was asked for and what it sent
    return JSONResponse(body)


async def alerts(request: Request) -> JSONResponse:
    who = await caller(request)
    who.require_reader(request.path_params["event_id"])
    event_id = await event_id_of(request)
    return JSONResponse({"event_id": event_id, "alerts": await request.app.state.monitor.alerts(event_id)})


async def report(request: Request) -> Response:
    who = await caller(request)
    who.require_reader(request.path_params["event_id"])
    event_id = await event_id_of(request)
    fmt = request.query_params.get("format", "json")
    if fmt not in ("json", "csv"):
        raise ApiError(400, "invalid", "format must be json or csv")
    monitor, hub = request.app.state.monitor, request.app.state.hub
    users = [u for u in await request.app.state.store.presence.list_users(event_id) if u.role == "candidate"]
    timelines = await asyncio.gather(*(monitor.timeline(event_id, u.user_id) for u in users))
    now = hub.clock()
    rows = [report_row(u, t, u.flags, now=now) for u, t in zip(users, timelines, strict=True)]
    if fmt == "csv":
        headers = {"Content-Disposition": f'attachment; filename="report-{event_id}.csv"'}
        return Response(report_csv(rows), media_type="text/csv; charset=utf-8", headers=headers)
    return JSONResponse(report_json(event_id, rows, now=now, threshold_s=monitor.rules.threshold_s))


routes = [
    Route("/api/v1/events/{event_id}/candidates/{candidate_id}/timeline", timeline, methods=["GET"]),
    Route("/api/v1/events/{event_id}/alerts", alerts, methods=["GET"]),
    Route("/api/v1/events/{event_id}/report", report, methods=["GET"]),
]
