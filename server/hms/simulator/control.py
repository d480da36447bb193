"""The control API under /_sim, for tests and load tests only. No auth: listen on loopback only.

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

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.hms.simulator import bodies
from server.hms.simulator.errors import not_found
from server.hms.simulator.faults import KINDS, parse_rule

if TYPE_CHECKING:
    from server.hms.simulator.simulator import Simulator


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

    return [
        Route("/health", health, methods=["GET"]),
        Route("/config", config, methods=["GET"]),
        Route("/events", events, methods=["GET"]),
        Route("/webhooks", webhooks, methods=["GET"]),
        Route("/log", injection_log, methods=["GET"]),
        Route("/faults", list_faults, methods=["GET"]),
        Route("/faults", add_fault, methods=["POST"]),
        Route("/faults", clear_faults, methods=["DELETE"]),
        Route("/faults/{rule_id}", remove_fault, methods=["DELETE"]),
    ]
