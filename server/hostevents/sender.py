"""The delivery loop, on every node: claim what is due, POST it signed, record what came of it.

A claim is a lease of twice the attempt's time limit and LEASE_MARGIN_S: two nodes never send one
delivery at the same moment, and a node that dies holding it leaves it to another once the lease
ends. A 2xx is delivered; any other status (a redirect too: they are never followed), a timeout or
a network error is tried again on the backoff schedule (schedule.py), until the retry window ends
and the delivery goes to the dead-letter list. Each attempt is signed anew with its own timestamp.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

import httpx

from server.background import Background, Counted, Outage
from server.config import Settings
from server.hostevents.metrics import HostEventMetrics
from server.hostevents.schedule import next_attempt
from server.hostevents.signing import Signer
from server.store.outbox import Attempt, Delivery, Outbox

log = logging.getLogger("proctorhub.hostevents")

POLL_S = 0.25
"""How often a node looks for due deliveries (retries, other nodes' events); its own events wake it."""
BATCH = 32
ROUNDS_PER_TICK = 8
MAX_IN_FLIGHT = 128
"""Attempts under way on one node at most: each runs on its own, so a slow receiver delays no other."""
LEASE_MARGIN_S = 5.0
"""A claim lasts twice an attempt's time limit and this: time enough to record the outcome."""
STOP_WAIT_S = 2.0
COUNTS_EVERY_S = 5.0
USER_AGENT = "proctorhub-events/1"


class Sender:
    def __init__(
        self,
        settings: Settings,
        outbox: Outbox,
        metrics: HostEventMetrics,
        background: Background,
        clock: Callable[[], float],
        on_failure: Counted,
    ) -> None:
        self._settings = settings
        self._outbox = outbox
        self._metrics = metrics
        self._background = background
        self._clock = clock
        self._signer = Signer(settings.events_secret)
        self._timeout_s = settings.events_timeout_s
        self._lease_s = 2 * settings.events_timeout_s + LEASE_MARGIN_S
        self._client: httpx.AsyncClient | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._on_failure = on_failure
        self._outage = Outage(log, "host events: recording an attempt")

    def start(self) -> None:
        self._client = httpx.AsyncClient(
            timeout=self._timeout_s,
            follow_redirects=False,
            headers={"user-agent": USER_AGENT},
            limits=httpx.Limits(max_connections=MAX_IN_FLIGHT),  # no attempt waits for a connection
        )
        self._background.run("host events delivery", self._deliver)
        self._background.every("host events counts", COUNTS_EVERY_S, self.count, first_delay_s=0)

    async def aclose(self) -> None:
        """After the loops stopped: attempts under way get STOP_WAIT_S to finish (most take
        milliseconds), the rest are cancelled (their claims run out after the lease; the deliveries
        are tried again by whichever node claims them next)."""
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=STOP_WAIT_S)
        for task in self._in_flight:
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    def wake(self) -> None:
        """Something was queued on this node: look now rather than at the next poll."""
        self._wake.set()

    async def _deliver(self) -> None:
        """Tick when woken or every POLL_S; a failing store is logged once, then once a minute, and
        counted (as every owned loop, server/background.py), with a growing pause between tries."""
        outage = Outage(log, "host events delivery")
        while not self._background.stopping:
            self._wake.clear()  # before the tick: a wake during it means one more round
            try:
                await self.tick()
            except Exception as exc:
                self._on_failure("host events delivery")
                await outage.pause(exc)
                continue
            outage.recovered()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_S)

    async def tick(self) -> None:
        """Claim as many due deliveries as there are free slots, and start their attempts."""
        for _ in range(ROUNDS_PER_TICK):
            free = MAX_IN_FLIGHT - len(self._in_flight)
            if free <= 0:
                return
            batch = await self._outbox.claim(
                self._settings.node_id, now=self._clock(), lease_s=self._lease_s, limit=min(BATCH, free)
            )
            for delivery in batch:
                task = asyncio.get_running_loop().create_task(self._attempt_owned(delivery))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            if len(batch) < BATCH:
                return

    async def _attempt_owned(self, delivery: Delivery) -> None:
        """An attempt on its own, so a slow receiver holds up no other; a store failure is logged once,
        then once a minute, and counted (the claim runs out and the delivery is tried again)."""
        try:
            await self.attempt(delivery)
        except Exception as exc:
            self._on_failure("host events delivery")
            self._outage.failed(exc)
        else:
            self._outage.recovered()

    async def count(self) -> None:
        for state, n in (await self._outbox.counts()).items():
            self._metrics.deliveries.labels(state).set(n)

    async def attempt(self, delivery: Delivery) -> Attempt:
        """POST one claimed delivery and record the outcome (raises only if the store fails)."""
        assert delivery.claim is not None, "only claimed deliveries are sent"
        status, answer = await self._post(delivery)
        now = self._clock()
        delivered = status is not None and 200 <= status < 300
        following = None
        if not delivered:
            following = next_attempt(
                delivery.attempts + 1,
                window_from=delivery.window_from,
                now=now,
                base_s=self._settings.events_backoff_base_s,
                retry_for_s=self._settings.events_retry_for_s,
                jitter=random.random(),
            )
        attempt = Attempt(at=now, delivered=delivered, answer=answer, status=status, next_at=following)
        recorded = await self._outbox.settle(delivery.delivery_id, delivery.claim, attempt)
        self._metrics.attempts.labels(attempt.outcome if recorded else "stale").inc()
        if recorded and delivered:
            self._metrics.delay.observe(max(0.0, now - delivery.created_at))
        if recorded and attempt.outcome == "dead":
            log.warning(
                "host event %s (%s) to %s given up after %d attempts: %s",
                delivery.delivery_id,
                delivery.type,
                delivery.url,
                delivery.attempts + 1,
                answer,
            )
        return attempt

    async def _post(self, delivery: Delivery) -> tuple[int | None, str]:
        """(HTTP status or None, a short answer for the deliveries API). The body is never read."""
        assert self._client is not None, "start() first"
        body = delivery.body.encode()
        headers = self._signer.headers(delivery.message_id, int(self._clock()), body)
        headers["content-type"] = "application/json"
        try:
            async with asyncio.timeout(self._timeout_s):
                request = self._client.build_request("POST", delivery.url, content=body, headers=headers)
                response = await self._client.send(request, stream=True)
                await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            return None, "timeout"
        except httpx.HTTPError as exc:
            return None, f"network error: {type(exc).__name__}"
        status = response.status_code
        if response.is_redirect:
            return status, f"HTTP {status} (redirects are not followed)"
        return status, f"HTTP {status}"
