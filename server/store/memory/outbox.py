"""The outbox in memory: the same claims, leases and states as in Redis, for one process."""

from __future__ import annotations

import bisect
from dataclasses import replace

from server.store.outbox import KEEP_DELIVERED, Attempt, Delivery, DeliveryState, RetryResult


class MemoryOutbox:
    def __init__(self, *, keep_delivered: int = KEEP_DELIVERED) -> None:
        self.keep_delivered = keep_delivered
        self._deliveries: dict[str, Delivery] = {}
        self._due: dict[str, float] = {}
        """Pending deliveries -> when they may be claimed: `next_at`, or the end of a claim's lease."""
        self._claims = 0
        self._delivered: list[tuple[float, str]] = []
        """(created_at, id) of the delivered ones, sorted: the oldest are let go past `keep_delivered`."""

    async def add(self, deliveries: list[Delivery]) -> int:
        added = 0
        for delivery in deliveries:
            if delivery.delivery_id in self._deliveries:
                continue
            added += 1
            self._deliveries[delivery.delivery_id] = delivery
            if delivery.state == "pending":
                self._due[delivery.delivery_id] = delivery.next_at
        return added

    async def claim(self, owner: str, *, now: float, lease_s: float, limit: int) -> list[Delivery]:
        due = sorted((at, i) for i, at in self._due.items() if at <= now)[: max(0, limit)]
        claimed = []
        for _, delivery_id in due:
            self._claims += 1
            until = now + lease_s
            delivery = replace(
                self._deliveries[delivery_id], claim=f"{owner}/{self._claims}", claimed_until=until
            )
            self._deliveries[delivery_id] = delivery
            self._due[delivery_id] = until
            claimed.append(delivery)
        return claimed

    async def settle(self, delivery_id: str, claim: str, attempt: Attempt) -> bool:
        held = self._deliveries.get(delivery_id)
        if held is None or held.claim != claim:
            return False
        delivery = replace(
            held,
            attempts=held.attempts + 1,
            last_at=attempt.at,
            last_status=attempt.status,
            last_answer=attempt.answer,
            claim=None,
            claimed_until=None,
        )
        if attempt.outcome == "retry":
            assert attempt.next_at is not None
            delivery = replace(delivery, next_at=attempt.next_at)
            self._due[delivery_id] = attempt.next_at
        else:
            self._due.pop(delivery_id, None)
            if attempt.outcome == "delivered":
                delivery = replace(delivery, state="delivered", delivered_at=attempt.at)
            else:
                delivery = replace(delivery, state="dead")
        self._deliveries[delivery_id] = delivery
        if delivery.state == "delivered":
            bisect.insort(self._delivered, (delivery.created_at, delivery_id))
            while len(self._delivered) > self.keep_delivered:
                del self._deliveries[self._delivered.pop(0)[1]]
        return True

    async def retry(self, delivery_id: str, *, now: float) -> RetryResult:
        held = self._deliveries.get(delivery_id)
        if held is None:
            return "unknown"
        if held.claimed_until is not None and held.claimed_until > now:
            return "sending"
        if held.state == "delivered":
            self._delivered.remove((held.created_at, delivery_id))
        self._deliveries[delivery_id] = replace(
            held, state="pending", next_at=now, window_from=now, claim=None, claimed_until=None
        )
        self._due[delivery_id] = now
        return "queued"

    async def get(self, delivery_id: str) -> Delivery | None:
        return self._deliveries.get(delivery_id)

    async def list(self, *, state: DeliveryState | None = None, limit: int = 100) -> list[Delivery]:
        chosen = [d for d in self._deliveries.values() if state is None or d.state == state]
        chosen.sort(key=lambda d: (d.created_at, d.delivery_id), reverse=True)
        return chosen[: max(0, limit)]

    async def counts(self) -> dict[DeliveryState, int]:
        found: dict[DeliveryState, int] = {"pending": 0, "delivered": 0, "dead": 0}
        for delivery in self._deliveries.values():
            found[delivery.state] += 1
        return found
