"""`POST /webhooks/100ms`: check who sends, check it is an event, store it durably, answer at once.

    source not in HMS_WEBHOOK_ALLOW_NETS       403 forbidden
    no HMS_WEBHOOK_SECRET configured           403 forbidden (webhooks are disabled)
    secret header missing / wrong              401 unauthenticated / 403 forbidden
    not a 100ms event (BadWebhook)             400 invalid_webhook, the reason in the message
    a type not in the catalogue                200 {"status": "ignored"} (not stored)
    the store is unreachable                   503 unavailable (100ms retries; never 200 unstored)
    stored                                     200 {"status": "accepted"}

Processing (dedupe, routing to our monitor or another environment) happens later, in the inbox.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.api.errors import error_response
from server.background import Outage
from server.config import Settings
from server.metrics import WebhookMetrics
from server.recording.intake.envelope import KNOWN_TYPES, MAX_BODY_BYTES, BadWebhook, parse_envelope
from server.store.webhooks import WebhookQueue

log = logging.getLogger("proctorhub.recording.webhooks")

PATH = "/webhooks/100ms"
RETRY_AFTER_S = "1"


class WebhookIntake:
    def __init__(self, settings: Settings, queue: WebhookQueue, metrics: WebhookMetrics) -> None:
        self._queue = queue
        self._metrics = metrics
        self._header = settings.hms_webhook_header
        self._secret = settings.hms_webhook_secret.encode()
        self._nets = [ipaddress.ip_network(net) for net in settings.hms_webhook_allow_nets]
        self._outage = Outage(log, "webhook intake: storing an event")
        if not self._secret:
            log.warning("HMS_WEBHOOK_SECRET is not set: every webhook is refused (403)")

    @property
    def routes(self) -> list[Route]:
        return [Route(PATH, self.receive, methods=["POST"])]

    async def receive(self, request: Request) -> Response:
        self._metrics.received.inc()
        if self._nets and not self._allowed(request):
            return self._refuse("not_allowed", 403, "forbidden", "source address not allowed")
        if not self._secret:
            return self._refuse(
                "disabled", 403, "forbidden", "webhooks are disabled: no secret is configured"
            )
        given = request.headers.get(self._header)
        if given is None:
            return self._refuse("missing_secret", 401, "unauthenticated", f"missing {self._header} header")
        if not hmac.compare_digest(given.encode("latin-1"), self._secret):
            return self._refuse("bad_secret", 403, "forbidden", f"wrong {self._header}")
        try:
            envelope = parse_envelope(await _body(request))
        except BadWebhook as exc:
            return self._refuse("malformed", 400, "invalid_webhook", exc.reason)
        except ClientDisconnect:
            return self._refuse("malformed", 400, "invalid_webhook", "the body was cut short")
        if envelope.type not in KNOWN_TYPES:
            self._metrics.ignored.inc()
            return JSONResponse({"status": "ignored"})
        try:
            await self._queue.append(envelope.raw)
        except Exception as exc:
            self._outage.failed(exc)
            return self._refuse(
                "store_unavailable",
                503,
                "unavailable",
                "the event could not be stored; retry",
                headers={"Retry-After": RETRY_AFTER_S},
            )
        self._outage.recovered()
        self._metrics.accepted.inc()
        return JSONResponse({"status": "accepted"})

    def _allowed(self, request: Request) -> bool:
        """The client address: the peer, or behind a trusted proxy the hop it names (client_address.py)."""
        if request.client is None:
            return False
        try:
            address = ipaddress.ip_address(request.client.host)
        except ValueError:
            return False
        return any(address in net for net in self._nets)

    def _refuse(
        self, reason: str, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> Response:
        self._metrics.refused.labels(reason).inc()
        return error_response(status, code, message, headers=headers)


async def _body(request: Request) -> bytes:
    """The body, read no further than one byte past the limit (parse_envelope refuses that)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            break
    return b"".join(chunks)
