"""/metrics' presence counts read every event and user: at most once per PRESENCE_COUNT_EVERY_S, however
often it is scraped (each store backend)."""

from __future__ import annotations

from server.api.health import PRESENCE_COUNT_EVERY_S, PresenceCounts
from server.store.base import Store
from server.store.records import ConnRef, EventConfig
from tests.client import login, token
from tests.conftest import SECRET, HubFactory, create_event, flush
from tests.fake_clock import FakeClock
from tests.hub.test_health_metrics import metric
from tests.polling import eventually
from tests.servers import RedisServer


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


async def test_the_gauge_follows_each_arrival_and_departure_on_redis(
    hub_factory: HubFactory, redis_server: RedisServer
) -> None:
    """The counts Redis makes (count_users.lua) reach /metrics and move with presence, admins too."""
    await flush(redis_server.url)
    hub = hub_factory(REDIS_URL=redis_server.url, HMS_SIMULATOR="embedded", HUB_PRESENCE_GRACE_S=1)
    create_event(hub, "counted")
    await login(hub.ws, token(SECRET, "a1", role="admin", event="counted"))
    candidate, _ = await login(hub.ws, token(SECRET, "c1", event="counted"))
    await login(hub.ws, token(SECRET, "c2", event="counted"))

    def users(presence: str, role: str = "candidate") -> float:
        labels = f'{{presence="{presence}",role="{role}"}}'
        return metric(hub.metrics_text(), "proctorhub_presence_users", labels)

    await eventually(lambda: users("online") == 2 and users("online", "admin") == 1, what="3 online")
    await candidate.close()
    await eventually(lambda: users("online") == 1 and users("offline") == 1, what="c1 offline")
