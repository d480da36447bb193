"""/metrics' presence counts read every event and user: at most once per PRESENCE_COUNT_EVERY_S, however
often it is scraped (each store backend)."""

from __future__ import annotations

from server.api.health import PRESENCE_COUNT_EVERY_S, PresenceCounts
from server.store.base import Store
from server.store.records import ConnRef, EventConfig
from tests.fake_clock import FakeClock


async def test_presence_counts_are_recounted_at_most_once_per_interval(store: Store) -> None:
    assert await store.events.create_event(EventConfig("ev1", "Maths"))
    clock = FakeClock()
    counts = PresenceCounts(clock=clock)
    await store.presence.connect(ConnRef("ev1", "u1", "c1", "n1"), role="candidate", name=None, now=1.0)
    assert (await counts.get(store))[("candidate", "online")] == 1
    await store.presence.connect(ConnRef("ev1", "u2", "c2", "n1"), role="candidate", name=None, now=2.0)
    for _ in range(100):  # a hot scraper within the interval sees the last figures, read once
        assert (await counts.get(store))[("candidate", "online")] == 1
    clock.now += PRESENCE_COUNT_EVERY_S
    assert (await counts.get(store))[("candidate", "online")] == 2
