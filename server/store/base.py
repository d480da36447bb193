"""The store: shared state and messages between nodes, as one object made of small concepts.

    store.events       EventStore       events and their counters            (events.py)
    store.presence     PresenceStore    users, sockets, nodes, flags          (presence.py)
    store.allocation   AllocationStore  rooms, seats, the allocation document (allocation.py)
    store.locks        LockStore        named locks with fencing tokens       (locks.py)
    store.tokens       TokenStore       held 100ms tokens                     (tokens.py)
    store.dedupe       DedupeStore      "seen before" keys                    (dedupe.py)
    store.webhooks     WebhookQueue     the durable webhook inbox             (webhooks.py)
    store.timelines    TimelineStore    the recording monitor's signals       (timelines.py)
    store.backfill     BackfillStore    browser backfill requests, segments   (backfill.py)
    store.lti          LtiStore         LTI platforms, logins, attempts       (lti.py)
    store.pubsub       PubSub           messages between nodes                (pubsub.py)
    store.outbox       Outbox           events to the host app, to deliver    (outbox.py)

Two backends compose them: `memory/` (one process, the embedded default) and `redis/` (any number of
nodes). Both pass one contract suite (tests/hub/test_store_contract.py). A consumer takes the concept
it uses, not the whole store. Stores never read the wall clock: every call that depends on time takes
`now` (epoch seconds).
"""

from __future__ import annotations

from typing import Protocol

from server.store.allocation import AllocationStore
from server.store.backfill import BackfillStore
from server.store.dedupe import DedupeStore
from server.store.events import EventStore
from server.store.locks import LockStore
from server.store.lti import LtiStore
from server.store.outbox import Outbox
from server.store.presence import PresenceStore
from server.store.pubsub import PubSub
from server.store.timelines import TimelineStore
from server.store.tokens import TokenStore
from server.store.webhooks import WebhookQueue


class Store(Protocol):
    events: EventStore
    presence: PresenceStore
    allocation: AllocationStore
    locks: LockStore
    tokens: TokenStore
    dedupe: DedupeStore
    webhooks: WebhookQueue
    timelines: TimelineStore
    backfill: BackfillStore
    lti: LtiStore
    pubsub: PubSub
    outbox: Outbox

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None:
        """Raise if the backend is unreachable (readiness)."""
