"""The control API under /_sim, for tests and load tests only. With a control key
(HMS_SIM_CONTROL_KEY, required off loopback) every route but /health wants `Authorization: Bearer
<key>` and answers 401 without it; without one, listen on loopback only.

GET    /_sim/health             {"ok": true, "started": bool}
GET    /_sim/config             the public config (no secret)
GET    /_sim/events             every event emitted (envelopes), before any webhook fault
GET    /_sim/webhooks           the delivery log: one entry per attempt, with its outcome
GET    /_sim/log                the injection log: every fault that fired
GET    /_sim/faults             the fault rules still armed
POST   /_sim/faults             add a rule (see faults.KINDS) -> the rule with its id
DELETE /_sim/faults             remove all rules
DELETE /_sim/faults/{rule_id}   remove one rule
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.hms.simulator import bodies
from server.hms.simulator.errors import HmsError, not_found
from server.hms.simulator.faults import KINDS, parse_rule

if TYPE_CHECKING:
    from server.hms.simulator.simulator import Simulator


Endpoint = Callable[[Request], Awaitable[Response]]


def guarded(key: str | None, endpoint: Endpoint) -> Endpoint:
    """`endpoint`, answering 401 unless the request carries the control key (if one is set)."""
    if key is None:
        return endpoint
    expected = f"Bearer {key}".encode()

    async def checked(request: Request) -> Response:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise HmsError(401, "control key required", ["Authorization: Bearer <HMS_SIM_CONTROL_KEY>"])
        return await endpoint(request)

    return checked


def routes(sim: Simulator) -> list[Route]:
    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "started": sim.started})

    async def config(request: Request) -> Response:
        c = sim.config
        return JSONResponse(
            {
                "access_key": c.access_key,
                "template_id": c.template_id,
                "roles": sorted(c.roles),
                "region": c.region,
                "app_id": c.app_id,
                "account_id": c.account_id,
                "webhook_url": c.webhook_url,
                "webhook_retry_delays": list(c.webhook_retry_delays),
                "reconnect_window_s": c.reconnect_window_s,
                "recording_delay_s": c.recording_delay_s,
                "fault_kinds": KINDS,
            }
        )

    async def events(request: Request) -> Response:
        return JSONResponse({"events": sim.events})

    async def webhooks(request: Request) -> Response:
        return JSONResponse({"deliveries": [d.to_json() for d in sim.deliveries]})

    async def injection_log(request: Request) -> Response:
        return JSONResponse({"injected": [i.to_json() for i in sim.injected]})

    async def list_faults(request: Request) -> Response:
        return JSONResponse({"faults": [r.to_json() for r in sim.faults.rules]})

    async def add_fault(request: Request) -> Response:
        rule = sim.faults.add(parse_rule(await bodies.json_object(request)))
        return JSONResponse(rule.to_json())

    async def clear_faults(request: Request) -> Response:
        sim.clear_faults()
        return JSONResponse({"faults": []})

    async def remove_fault(request: Request) -> Response:
        if not sim.remove_fault(request.path_params["rule_id"]):
            raise not_found("fault rule not found")
        return JSONResponse({"removed": request.path_params["rule_id"]})

    key = sim.config.control_key
    return [
        Route("/health", health, methods=["GET"]),
        Route("/config", guarded(key, config), methods=["GET"]),
        Route("/events", guarded(key, events), methods=["GET"]),
        Route("/webhooks", guarded(key, webhooks), methods=["GET"]),
        Route("/log", guarded(key, injection_log), methods=["GET"]),
        Route("/faults", guarded(key, list_faults), methods=["GET"]),
        Route("/faults", guarded(key, add_fault), methods=["POST"]),
        Route("/faults", guarded(key, clear_faults), methods=["DELETE"]),
        Route("/faults/{rule_id}", guarded(key, remove_fault), methods=["DELETE"]),
    ]
