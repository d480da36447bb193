"""Webhooks as 100ms sends them (contract §3.1, §3.2), with injected faults.

One POST per event with a JSON body (the §3.2 envelope) and the configured headers, passed through
unchanged. Only HTTP 200 counts as delivered; anything else (another status, a connection error, a
timeout) is retried after `retry_delays` (100ms: +1 s, +3 s, +10 s, each counted from the previous
attempt), then dropped. Every attempt is appended to `deliveries`.

First attempts leave a queue in emission order through `concurrency` workers (with one worker they
arrive in that order); retries run on their own timers, as 100ms's do. Faults act before the queue:
`webhook.lose` (never sent), `webhook.fail` (one attempt lost on the way: retried as any failure),
`webhook.duplicate` (sent twice, same `id`), `webhook.delay` (queued
`seconds` late), `webhook.reorder` (held back until the next event has been queued, or for at most
`seconds`, default 5).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from server.hms.simulator import times
from server.hms.simulator.faults import Faults, Occasion
from server.hms.simulator.tasks import Tasks

log = logging.getLogger("proctorhub.hms.simulator")

REORDER_HOLD_S = 5.0


def envelope(
    *, app_id: str, account_id: str, template_id: str, event_type: str, data: dict[str, Any], now: float
) -> dict[str, Any]:
    """The §3.2 envelope: version "2.0", a UUID id, a second-precision timestamp."""
    return {
        "version": "2.0",
        "id": str(uuid.uuid4()),
        "app_id": app_id,
        "account_id": account_id,
        "template_id": template_id,
        "timestamp": times.seconds(now),
        "type": event_type,
        "data": data,
    }


@dataclass(frozen=True)
class Delivery:
    """One delivery attempt (or the decision not to make one) of one event."""

    at: float
    time: str
    event_id: str
    event_type: str
    room_id: str | None
    url: str | None
    attempt: int  # 0 = first try, 1..3 = retries
    status: int | None
    error: str | None
    outcome: str  # delivered | retrying | dropped | lost (injected) | no-url

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Outgoing:
    event: dict[str, Any]
    url: str
    headers: Mapping[str, str]
    room_id: str | None
    occasion: Occasion | None = None


class WebhookSender:
    def __init__(
        self,
        *,
        retry_delays: tuple[float, ...],
        timeout_s: float,
        concurrency: int,
        faults: Faults,
        tasks: Tasks,
        clock: Callable[[], float],
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._delays = retry_delays
        self._transport = transport
        self._timeout_s = timeout_s
        self._concurrency = concurrency
        self._faults = faults
        self._tasks = tasks
        self._clock = clock
        self._queue: asyncio.Queue[_Outgoing] = asyncio.Queue()
        self._held: list[_Outgoing] = []
        self._client: httpx.AsyncClient | None = None
        self.deliveries: list[Delivery] = []

    def start(self) -> None:
        if self._client is not None:
            return
        self._client = httpx.AsyncClient(timeout=self._timeout_s, transport=self._transport)
        for n in range(self._concurrency):
            self._tasks.spawn(self._worker(), name=f"hms-sim-webhooks-{n}")

    async def aclose(self) -> None:
        """Close the HTTP client; the workers are the simulator's tasks and are cancelled with them."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def send(
        self, event: dict[str, Any], *, url: str | None, headers: Mapping[str, str], occasion: Occasion
    ) -> None:
        """Deliver `event` to `url` (in the background), applying any webhook faults first."""
        room_id = occasion.room_id
        if url is None:
            self._log(event, room_id, None, 0, None, None, "no-url")
            return
        if self._faults.take("webhook.lose", occasion):
            self._log(event, room_id, url, 0, None, None, "lost (injected)")
            return
        copies = 2 if self._faults.take("webhook.duplicate", occasion) else 1
        delay = self._faults.take("webhook.delay", occasion)
        reorder = self._faults.take("webhook.reorder", occasion)
        for _ in range(copies):
            item = _Outgoing(event, url, dict(headers), room_id, occasion)
            if delay is not None:
                self._tasks.later(delay.seconds, lambda item=item: self._enqueue(item))
            elif reorder is not None:
                self._held.append(item)
                self._tasks.later(reorder.seconds or REORDER_HOLD_S, self._release_held)
            else:
                self._enqueue(item)

    def _enqueue(self, item: _Outgoing) -> None:
        self._queue.put_nowait(item)
        self._release_held()

    def _release_held(self) -> None:
        held, self._held = self._held, []
        for item in held:
            self._queue.put_nowait(item)

    async def _worker(self) -> None:
        while True:
            item = await self._queue.get()
            await self._attempt(item, 0)

    async def _attempt(self, item: _Outgoing, attempt: int) -> None:
        status: int | None = None
        error: str | None = None
        if self._client is None:
            error = "simulator stopped"
        elif item.occasion is not None and self._faults.take("webhook.fail", item.occasion):
            error = "attempt lost (injected)"
        else:
            try:
                answer = await self._client.post(
                    item.url,
                    content=json.dumps(item.event).encode(),
                    headers={"Content-Type": "application/json", **item.headers},
                )
                status = answer.status_code
            except httpx.TimeoutException:
                error = "timeout"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
        if status == 200:
            outcome = "delivered"
        elif attempt < len(self._delays):
            outcome = "retrying"
            self._tasks.later(self._delays[attempt], lambda: self._attempt(item, attempt + 1))
        else:
            outcome = "dropped"
            log.warning(
                "webhook %s %s dropped after %d attempts (last: %s)",
                item.event["type"],
                item.event["id"],
                attempt + 1,
                status or error,
            )
        self._log(item.event, item.room_id, item.url, attempt, status, error, outcome)

    def _log(
        self,
        event: dict[str, Any],
        room_id: str | None,
        url: str | None,
        attempt: int,
        status: int | None,
        error: str | None,
        outcome: str,
    ) -> None:
        now = self._clock()
        self.deliveries.append(
            Delivery(
                now,
                times.nanos(now),
                event["id"],
                event["type"],
                room_id,
                url,
                attempt,
                status,
                error,
                outcome,
            )
        )
