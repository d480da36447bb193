"""The outbox of events to the host app: durable deliveries, claimed by one sender at a time.

A delivery is one event for one URL. It is `pending` until a 2xx answer makes it `delivered`, or
until its senders give up (its retry window ran out) and it goes to the dead-letter list, `dead`.
`POST /api/v1/deliveries/{id}/retry` makes any delivery pending and due again.

Claiming is a lease: `claim` hands each due delivery to one caller and makes it due again when the
lease ends, so a sender that died holding it leaves it to another node. An attempt is recorded
with the claim's token (`settle`); a sender whose lease ran out (another took it) is ignored.
Delivered deliveries are kept for the most recent KEEP_DELIVERED; dead ones until retried.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from server.store.records import Record

DeliveryState = Literal["pending", "delivered", "dead"]
STATES: tuple[DeliveryState, ...] = ("pending", "delivered", "dead")
KEEP_DELIVERED = 10_000


@dataclass(frozen=True, slots=True)
class Delivery(Record):
    delivery_id: str
    message_id: str
    """`webhook-id`: one per event, the same for every URL and every attempt (receivers dedupe on it)."""
    event_id: str
    type: str
    url: str
    body: str
    """The JSON payload exactly as signed and sent."""
    created_at: float
    state: DeliveryState = "pending"
    attempts: int = 0
    next_at: float = 0.0
    """When it is due (pending deliveries)."""
    window_from: float = 0.0
    """Retries go on for the retry window from here: the creation, or the last manual retry."""
    last_at: float | None = None
    last_status: int | None = None
    """The HTTP status of the last answer; None when there was none (network error, timeout)."""
    last_answer: str | None = None
    delivered_at: float | None = None
    claim: str | None = None
    """The token of the claim in force (set by `claim`, cleared by `settle` and `retry`)."""
    claimed_until: float | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """What came of one attempt: delivered, or retried at `next_at`, or (neither) given up."""

    at: float
    delivered: bool
    answer: str
    status: int | None = None
    next_at: float | None = None

    @property
    def outcome(self) -> Literal["delivered", "retry", "dead"]:
        if self.delivered:
            return "delivered"
        return "dead" if self.next_at is None else "retry"


RetryResult = Literal["queued", "sending", "unknown"]


class Outbox(Protocol):
    async def add(self, deliveries: list[Delivery]) -> int:
        """Store new deliveries, pending ones due at their `next_at`; how many were new. One whose id is
        already stored (the same fact reported twice) is left as it is. Raises if the backend is down."""

    async def claim(self, owner: str, *, now: float, lease_s: float, limit: int) -> list[Delivery]:
        """Up to `limit` pending deliveries due by `now`, earliest first, each now claimed by `owner`
        until `now + lease_s` (with a fresh `claim` token): no other claim gets them before then."""

    async def settle(self, delivery_id: str, claim: str, attempt: Attempt) -> bool:
        """Record an attempt made under `claim` (attempts + 1, last answer, the new state); False and
        nothing written when `claim` is no longer the delivery's (its lease ran out, or it was retried)."""

    async def retry(self, delivery_id: str, *, now: float) -> RetryResult:
        """Make a delivery pending and due at `now`, its retry window starting again; `sending` (and
        nothing changed) while a sender holds it; `unknown` if there is no such delivery."""

    async def get(self, delivery_id: str) -> Delivery | None: ...

    async def list(self, *, state: DeliveryState | None = None, limit: int = 100) -> list[Delivery]:
        """The newest first (by creation), of one state or of all."""

    async def counts(self) -> dict[DeliveryState, int]:
        """How many deliveries there are in each state."""
