"""The Store contract: one suite, run against MemoryStore and RedisStore alike.

Time is a fake clock (`now` arguments); only pub/sub waits on the real loop,
because Redis delivers messages from another connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import replace

import pytest
import redis.asyncio as aioredis
import uvloop
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest
from redis.exceptions import ConnectionError as RedisConnectionError

from server.hubs.fanout import Fanout
from server.metrics import HubMetrics
from server.protocol import Outbound
from server.store.allocation import KEEP
from server.store.base import Store
from server.store.lti import AcsCall, LtiAttempt, LtiLogin, LtiPlatform
from server.store.memory import MemoryStore
from server.store.outbox import Attempt, Delivery
from server.store.records import (
    ConnRef,
    EventConfig,
    FlagRecord,
    HeldToken,
    RoomRecord,
    Transition,
    UserRecord,
)
from server.store.redis import RedisStore
from server.store.redis import presence as redis_presence
from server.store.redis.connection import connect
from server.store.redis.pubsub import RedisPubSub
from server.store.timelines import CheckRead
from tests.conftest import flush
from tests.polling import eventually
from tests.servers import RedisServer, free_port, start_redis

EV = "ev1"
GRACE = 10.0


def ref(user: str, conn: str = "c1", node: str = "n1", event: str = EV) -> ConnRef:
    return ConnRef(event, user, conn, node)


def flag(user: str, flag_id: str, ts: float) -> FlagRecord:
    return FlagRecord(flag_id, EV, user, "proctor-1", f"note {flag_id}", "high", ts, {"k": [1, 2]})


@pytest.fixture
async def redis_url(redis_server: RedisServer) -> str:
    await flush(redis_server.url)
    return redis_server.url


async def online(store: Store, user: str, *, conn: str = "c1", node: str = "n1", now: float = 0.0) -> None:
    await store.presence.connect(ref(user, conn, node), role="candidate", name=None, now=now)


# events


async def test_create_event_refuses_duplicate(store: Store) -> None:
    assert await store.events.create_event(EventConfig("e1", "Maths"))
    assert not await store.events.create_event(EventConfig("e1", "Other name"))
    assert await store.events.get_event("e1") == EventConfig("e1", "Maths")


async def test_get_event_round_trips_every_field(store: Store) -> None:
    config = EventConfig("e1", "Maths", 12, 2, 7, 300, 60, False, "2025-01-01T09:00Z", None)
    await store.events.create_event(config)
    assert await store.events.get_event("e1") == config
    assert await store.events.get_event("missing") is None


async def test_list_events_sorted_by_id(store: Store) -> None:
    assert await store.events.list_events() == []
    for event_id in ("b", "c", "a"):
        await store.events.create_event(EventConfig(event_id, event_id.upper()))
    assert [e.event_id for e in await store.events.list_events()] == ["a", "b", "c"]


async def test_save_event_overwrites_and_creates(store: Store) -> None:
    await store.events.create_event(EventConfig("e1", "Maths"))
    await store.events.save_event(EventConfig("e1", "Physics", room_size=3))
    await store.events.save_event(EventConfig("e2", "New"))
    assert await store.events.get_event("e1") == EventConfig("e1", "Physics", room_size=3)
    assert [e.name for e in await store.events.list_events()] == ["Physics", "New"]


# presence


async def test_connect_makes_user_online(store: Store) -> None:
    t = await store.presence.connect(ref("u1"), role="candidate", name="Ann", now=5.0)
    expected = UserRecord(EV, "u1", "candidate", "Ann", "online", 5.0, 1, "unknown", 0, None)
    assert t == Transition(expected, True)
    assert await store.presence.get_user(EV, "u1") == expected
    assert await store.presence.get_user(EV, "nobody") is None


async def test_second_tab_is_not_a_change(store: Store) -> None:
    await store.presence.connect(ref("u1", "c1"), role="candidate", name="Ann", now=1.0)
    t = await store.presence.connect(ref("u1", "c2"), role="candidate", name=None, now=2.0)
    assert not t.changed
    record = t.record
    assert (record.presence, record.connections, record.since, record.name) == ("online", 2, 1.0, "Ann")


async def test_same_conn_twice_counts_once(store: Store) -> None:
    await online(store, "u1", conn="c1")
    t = await store.presence.connect(ref("u1", "c1"), role="candidate", name=None, now=1.0)
    assert t.record.connections == 1


async def test_connect_updates_role_and_name(store: Store) -> None:
    await store.presence.connect(ref("u1", "c1"), role="candidate", name="Ann", now=1.0)
    t = await store.presence.connect(ref("u1", "c2"), role="proctor", name="", now=2.0)
    assert (t.record.role, t.record.name) == ("proctor", "")


async def test_disconnect_one_of_two_tabs_keeps_online(store: Store) -> None:
    await online(store, "u1", conn="c1")
    await online(store, "u1", conn="c2")
    t = await store.presence.disconnect(ref("u1", "c1"), now=3.0, grace_s=GRACE)
    assert t is not None and not t.changed
    assert (t.record.presence, t.record.connections, t.record.since) == ("online", 1, 0.0)


async def test_last_disconnect_starts_reconnecting(store: Store) -> None:
    await online(store, "u1")
    t = await store.presence.disconnect(ref("u1"), now=3.5, grace_s=GRACE)
    assert t is not None and t.changed
    assert (t.record.presence, t.record.connections, t.record.since) == ("reconnecting", 0, 3.5)
    assert await store.presence.get_user(EV, "u1") == t.record


async def test_disconnect_unknown_user_is_none(store: Store) -> None:
    assert await store.presence.disconnect(ref("ghost"), now=1.0, grace_s=GRACE) is None


async def test_reconnect_within_grace_cancels_expiry(store: Store) -> None:
    await online(store, "u1")
    await store.presence.disconnect(ref("u1"), now=1.0, grace_s=GRACE)
    t = await store.presence.connect(ref("u1", "c2"), role="candidate", name=None, now=4.0)
    assert t.changed and (t.record.presence, t.record.since, t.record.connections) == ("online", 4.0, 1)
    assert await store.presence.expire_graces(100.0) == []
    assert (await store.presence.get_user(EV, "u1")).presence == "online"  # type: ignore[union-attr]


async def test_expire_graces_after_deadline_exactly_once(store: Store) -> None:
    await online(store, "u1")
    await online(store, "u2", conn="c2")
    await store.presence.disconnect(ref("u1"), now=1.0, grace_s=GRACE)
    await store.presence.disconnect(ref("u2", "c2"), now=5.0, grace_s=GRACE)
    assert await store.presence.expire_graces(10.9) == []
    first = await store.presence.expire_graces(11.0)
    assert [(r.user_id, r.presence, r.since) for r in first] == [("u1", "offline", 11.0)]
    assert await store.presence.expire_graces(11.0) == []
    assert [r.user_id for r in await store.presence.expire_graces(20.0)] == ["u2"]
    assert await store.presence.expire_graces(1000.0) == []
    assert await store.presence.get_user(EV, "u1") == first[0]


async def test_offline_user_comes_back_online(store: Store) -> None:
    await online(store, "u1")
    await store.presence.disconnect(ref("u1"), now=1.0, grace_s=GRACE)
    await store.presence.expire_graces(50.0)
    t = await store.presence.connect(ref("u1", "c9"), role="candidate", name=None, now=60.0)
    assert t.changed and (t.record.presence, t.record.since) == ("online", 60.0)


async def test_finish_is_sticky(store: Store) -> None:
    await online(store, "u1")
    t = await store.presence.finish(EV, "u1", now=2.0)
    assert t is not None and t.changed and (t.record.presence, t.record.since) == ("finished", 2.0)
    again = await store.presence.finish(EV, "u1", now=3.0)
    assert again == Transition(t.record, False)
    left = await store.presence.disconnect(ref("u1"), now=4.0, grace_s=GRACE)
    assert left is not None and not left.changed
    assert (left.record.presence, left.record.connections) == ("finished", 0)
    back = await store.presence.connect(ref("u1", "c2"), role="candidate", name=None, now=5.0)
    assert not back.changed and (back.record.presence, back.record.since) == ("finished", 2.0)
    assert await store.presence.expire_graces(1000.0) == []


async def test_finish_during_grace_is_not_expired(store: Store) -> None:
    await online(store, "u1")
    await store.presence.disconnect(ref("u1"), now=1.0, grace_s=GRACE)
    await store.presence.finish(EV, "u1", now=2.0)
    assert await store.presence.expire_graces(100.0) == []
    assert (await store.presence.get_user(EV, "u1")).presence == "finished"  # type: ignore[union-attr]


async def test_finish_unknown_user_is_none(store: Store) -> None:
    assert await store.presence.finish(EV, "ghost", now=1.0) is None


async def test_list_users_sorted_per_event(store: Store) -> None:
    for user in ("u2", "u1", "u3"):
        await online(store, user, conn=f"c-{user}")
    await store.presence.connect(ref("u9", "cx", event="other"), role="candidate", name=None, now=0.0)
    assert [r.user_id for r in await store.presence.list_users(EV)] == ["u1", "u2", "u3"]
    assert [r.user_id for r in await store.presence.list_users("other")] == ["u9"]
    assert await store.presence.list_users("empty") == []


async def test_ids_with_separators_do_not_collide(store: Store) -> None:
    await store.presence.connect(ref("b:c", event="a"), role="candidate", name="one", now=1.0)
    await store.presence.connect(ref("c", "c2", event="a:b"), role="candidate", name="two", now=1.0)
    await store.presence.connect(ref("%3A", "c3", event="a"), role="candidate", name="three", now=1.0)
    assert (await store.presence.get_user("a", "b:c")).name == "one"  # type: ignore[union-attr]
    assert (await store.presence.get_user("a:b", "c")).name == "two"  # type: ignore[union-attr]
    assert (await store.presence.get_user("a", "%3A")).name == "three"  # type: ignore[union-attr]
    assert await store.presence.get_user("a", ":") is None


async def test_count_users_by_role_and_presence_whatever_the_ids(store: Store) -> None:
    for user, event in (("b:c", "a"), ("%3A", "a"), ("c", "a:b"), ("p%", "a")):
        role = "proctor" if user.startswith("p") else "candidate"
        await store.presence.connect(ref(user, f"k-{user}", event=event), role=role, name=None, now=1.0)
    await store.presence.disconnect(ref("b:c", "k-b:c", event="a"), now=2.0, grace_s=5.0)
    assert await store.presence.count_users("a") == Counter(
        {("candidate", "reconnecting"): 1, ("candidate", "online"): 1, ("proctor", "online"): 1}
    )
    assert await store.presence.count_users("a:b") == Counter({("candidate", "online"): 1})
    assert await store.presence.count_users("empty") == Counter()


async def test_count_users_of_an_event_larger_than_one_counting_call(store: Store) -> None:
    """Redis counts COUNT_SLICE users per script call: an event of a little over two slices."""
    users = 2 * redis_presence.COUNT_SLICE + 5
    for n in range(users):
        await store.presence.connect(ref(f"u{n}", f"c{n}"), role="candidate", name=None, now=1.0)
    for n in range(7):
        await store.presence.disconnect(ref(f"u{n}", f"c{n}"), now=2.0, grace_s=5.0)
    assert await store.presence.count_users(EV) == Counter(
        {("candidate", "online"): users - 7, ("candidate", "reconnecting"): 7}
    )


async def test_times_round_trip_exactly(store: Store) -> None:
    now = 0.1 + 0.2
    t = await store.presence.connect(ref("u1"), role="candidate", name=None, now=now)
    assert t.record.since == now
    await store.presence.disconnect(ref("u1"), now=now, grace_s=0.7)
    assert await store.presence.expire_graces(now + 0.7 - 1e-9) == []
    assert [r.since for r in await store.presence.expire_graces(now + 0.7)] == [now + 0.7]


async def test_set_video(store: Store) -> None:
    await online(store, "u1")
    t = await store.presence.set_video(EV, "u1", "on")
    assert t is not None and t.changed and t.record.video == "on"
    same = await store.presence.set_video(EV, "u1", "on")
    assert same == Transition(t.record, False)
    assert await store.presence.set_video(EV, "ghost", "on") is None
    assert (await store.presence.get_user(EV, "u1")).video == "on"  # type: ignore[union-attr]


async def test_set_status_changes_some_fields_and_says_whether_any_differed(store: Store) -> None:
    await online(store, "u1")
    t = await store.presence.set_status(EV, "u1", {"recording": "on", "open_alerts": 2})
    assert t is not None and t.changed
    assert (t.record.recording, t.record.open_alerts, t.record.video) == ("on", 2, "unknown")
    again = await store.presence.set_status(EV, "u1", {"open_alerts": 2})
    assert again is not None and not again.changed
    assert await store.presence.get_user(EV, "u1") == t.record
    assert await store.presence.set_status(EV, "ghost", {"open_alerts": 1}) is None


# timelines


async def test_signals_are_kept_once_each(store: Store) -> None:
    assert await store.timelines.add_signals(EV, "c1", [b'{"a":1}', b'{"b":2}']) == 2
    assert await store.timelines.add_signals(EV, "c1", [b'{"a":1}', b'{"c":3}']) == 1
    assert sorted(await store.timelines.get_signals(EV, "c1")) == [b'{"a":1}', b'{"b":2}', b'{"c":3}']
    assert await store.timelines.get_signals(EV, "c2") == []


async def test_a_fold_replaces_the_signals_it_folds_in_one_step(store: Store) -> None:
    await store.timelines.add_signals(EV, "c1", [b"t1", b"t2", b"t3"])
    await store.timelines.add_signals(EV, "c2", [b"t1"])
    await store.timelines.replace_signals(EV, "c1", [b"t1", b"t2", b"gone already"], [b"fold"])
    assert sorted(await store.timelines.get_signals(EV, "c1")) == [b"fold", b"t3"]
    assert await store.timelines.get_signals(EV, "c2") == [b"t1"]  # another candidate's stay
    await store.timelines.replace_signals(EV, "c1", [b"fold"], [])
    assert await store.timelines.get_signals(EV, "c1") == [b"t3"]


async def test_alerts_are_kept_per_candidate_and_indexed_per_event(store: Store) -> None:
    await store.timelines.put_alerts(EV, "c1", {"x": b"1"})
    await store.timelines.put_alerts(EV, "c1", {"x": b"2", "y": b"3"})
    await store.timelines.put_alerts(EV, "c2", {})
    assert await store.timelines.get_alerts(EV, "c1") == {"x": b"2", "y": b"3"}
    assert await store.timelines.alerted_candidates(EV) == ["c1"]


async def test_rooms_and_sessions_lead_back_to_events_and_candidates(store: Store) -> None:
    await store.allocation.add_room(RoomRecord(EV, "room-9", "ph-ev1-9"))
    assert await store.allocation.room_event("room-9") == EV
    assert await store.allocation.room_event("elsewhere") is None
    await store.timelines.add_session_member("s1", EV, "c1")
    await store.timelines.add_session_member("s1", EV, "c1")
    await store.timelines.add_session_member("s1", "ev2", "c1")
    assert await store.timelines.session_members("s1") == [(EV, "c1"), ("ev2", "c1")]


async def test_due_checks_come_once_at_their_earliest_time(store: Store) -> None:
    await store.timelines.schedule_check("a", 10.0)
    await store.timelines.schedule_check("a", 5.0)
    await store.timelines.schedule_check("a", 8.0)
    await store.timelines.schedule_check("b", 7.0)
    assert await store.timelines.due_checks(4.9) == []
    assert await store.timelines.due_checks(5.0) == ["a"]
    assert await store.timelines.due_checks(100.0) == ["b"]
    assert await store.timelines.due_checks(100.0) == []


# flags


async def test_flags_count_and_order(store: Store) -> None:
    await online(store, "u1")
    flags = [flag("u1", f"f{i}", 10.0 + i / 3) for i in range(3)]
    for count, item in enumerate(flags, start=1):
        record = await store.presence.add_flag(item)
        assert record is not None and record.flags == count
    assert await store.presence.list_flags(EV, "u1") == flags
    assert (await store.presence.get_user(EV, "u1")).flags == 3  # type: ignore[union-attr]
    assert await store.presence.list_flags(EV, "u2") == []


async def test_add_flag_unknown_user_is_none(store: Store) -> None:
    assert await store.presence.add_flag(flag("ghost", "f1", 1.0)) is None
    assert await store.presence.list_flags(EV, "ghost") == []


# dedupe


async def test_once_within_ttl(store: Store) -> None:
    assert await store.dedupe.once("k", now=0.0, ttl_s=10.0)
    assert not await store.dedupe.once("k", now=9.99, ttl_s=10.0)
    assert await store.dedupe.once("other", now=1.0, ttl_s=10.0)
    assert await store.dedupe.once("k", now=10.0, ttl_s=10.0)
    assert not await store.dedupe.once("k", now=12.0, ttl_s=10.0)


# nodes


async def test_reap_dead_node(store: Store) -> None:
    await store.presence.node_alive("n1", now=90.0, until=100.0)
    await store.presence.node_alive("n2", now=190.0, until=200.0)
    await online(store, "dead", conn="c1", node="n1")
    await online(store, "live", conn="c2", node="n2")
    await online(store, "both", conn="c3", node="n1")
    await online(store, "both", conn="c4", node="n2")
    assert await store.presence.reap_dead_nodes(now=99.0, grace_s=GRACE) == []
    moved = await store.presence.reap_dead_nodes(now=150.0, grace_s=GRACE)
    assert [(r.user_id, r.presence, r.since, r.connections) for r in moved] == [
        ("dead", "reconnecting", 90.0, 0)  # it left when n1 last renewed, not when n1 was found dead
    ]
    assert await store.presence.reap_dead_nodes(now=150.0, grace_s=GRACE) == []
    live, both = await store.presence.get_user(EV, "live"), await store.presence.get_user(EV, "both")
    assert live is not None and (live.presence, live.connections) == ("online", 1)
    assert both is not None and (both.presence, both.connections) == ("online", 1)
    assert [r.user_id for r in await store.presence.expire_graces(150.0 + GRACE)] == ["dead"]


async def test_a_dead_nodes_user_who_left_its_other_node_too_is_dated_at_that_later_drop(
    store: Store,
) -> None:
    await store.presence.node_alive("n1", now=90.0, until=100.0)
    await online(store, "u1", conn="c1", node="n1")
    await online(store, "u1", conn="c2", node="n2", now=95.0)  # back through the other node
    gone = await store.presence.disconnect(ref("u1", "c2", "n2"), now=120.0, grace_s=GRACE)
    assert gone is not None and not gone.changed  # n1's dead socket still counts until n1 is reaped
    moved = await store.presence.reap_dead_nodes(now=150.0, grace_s=GRACE)
    assert [(r.user_id, r.presence, r.since) for r in moved] == [("u1", "reconnecting", 120.0)]


async def test_two_tabs_on_dead_node_move_once(store: Store) -> None:
    await store.presence.node_alive("n1", now=0.0, until=10.0)
    await online(store, "u1", conn="c1", node="n1")
    await online(store, "u1", conn="c2", node="n1")
    moved = await store.presence.reap_dead_nodes(now=20.0, grace_s=GRACE)
    assert [(r.user_id, r.connections) for r in moved] == [("u1", 0)]


async def test_node_alive_extends_deadline(store: Store) -> None:
    await store.presence.node_alive("n1", now=90.0, until=100.0)
    await online(store, "u1")
    await store.presence.node_alive("n1", now=290.0, until=300.0)
    assert await store.presence.reap_dead_nodes(now=200.0, grace_s=GRACE) == []
    assert [r.user_id for r in await store.presence.reap_dead_nodes(now=300.0, grace_s=GRACE)] == ["u1"]


async def test_a_stopping_node_hands_back_its_sockets_at_once_and_is_never_reaped(store: Store) -> None:
    await store.presence.node_alive("n1", now=90.0, until=100.0)
    await online(store, "u1", conn="n1/1", node="n1")
    await online(store, "u2", conn="n1/2", node="n1")
    await online(store, "u2", conn="n2/1", node="n2")  # a tab on another node keeps u2 online
    released = await store.presence.release_node("n1", now=50.0, grace_s=GRACE)
    assert [(r.user_id, r.presence) for r in released] == [("u1", "reconnecting")]
    assert await store.presence.reap_dead_nodes(now=1000.0, grace_s=GRACE) == []
    assert (await store.presence.get_user(EV, "u2")).presence == "online"  # type: ignore[union-attr]
    assert [r.user_id for r in await store.presence.expire_graces(50.0 + GRACE)] == ["u1"]


# cross-node messages


async def test_publish_reaches_subscriber(store: Store) -> None:
    received: list[tuple[str, bytes]] = []
    await store.pubsub.subscribe("room:1", lambda topic, payload: received.append((topic, payload)))
    await store.pubsub.publish("room:1", b"\x00hello\xff")
    await store.pubsub.publish("room:2", b"elsewhere")
    await eventually(lambda: len(received) >= 1)
    await store.pubsub.publish("room:1", b"second")
    await eventually(lambda: len(received) >= 2)
    assert received == [("room:1", b"\x00hello\xff"), ("room:1", b"second")]


async def test_unsubscribe_stops_delivery(store: Store) -> None:
    received: list[tuple[str, bytes]] = []
    await store.pubsub.subscribe("a", lambda topic, payload: received.append((topic, payload)))
    await store.pubsub.subscribe("mark", lambda topic, payload: received.append((topic, payload)))
    await store.pubsub.unsubscribe("a")
    await store.pubsub.publish("a", b"late")
    await store.pubsub.publish("mark", b"after")
    await eventually(lambda: ("mark", b"after") in received)
    assert received == [("mark", b"after")]


async def test_subscribe_again_replaces_handler(store: Store) -> None:
    first: list[bytes] = []
    second: list[bytes] = []
    await store.pubsub.subscribe("t", lambda _topic, payload: first.append(payload))
    await store.pubsub.subscribe("t", lambda _topic, payload: second.append(payload))
    await store.pubsub.publish("t", b"x")
    await eventually(lambda: second == [b"x"])
    assert first == []


# redis only: many nodes, failures


async def test_concurrent_expire_graces_returns_each_user_once(redis_url: str) -> None:
    stores = [RedisStore(redis_url, batch=3), RedisStore(redis_url, batch=3)]
    try:
        users = [f"u{i}" for i in range(40)]
        for user in users:
            await online(stores[0], user, conn=f"c-{user}")
            await stores[0].presence.disconnect(ref(user, f"c-{user}"), now=0.0, grace_s=GRACE)
        results = await asyncio.gather(*(s.presence.expire_graces(GRACE) for s in stores * 3))
        returned = [r.user_id for result in results for r in result]
        assert sorted(returned) == sorted(users)
        assert sum(1 for result in results if result) >= 2  # the calls really raced for the work
    finally:
        for s in stores:
            await s.close()


async def test_concurrent_reap_returns_each_user_once(redis_url: str) -> None:
    stores = [RedisStore(redis_url), RedisStore(redis_url)]
    try:
        users = []
        for n in range(12):
            await stores[0].presence.node_alive(f"n{n}", now=0.0, until=10.0)
            for i in range(4):
                users.append(f"u{n}-{i}")
                await online(stores[0], users[-1], conn=f"c{n}-{i}", node=f"n{n}")
        await stores[0].presence.node_alive("live", now=990.0, until=1000.0)
        await online(stores[0], "keeper", conn="ck", node="live")
        results = await asyncio.gather(
            *(s.presence.reap_dead_nodes(now=20.0, grace_s=GRACE) for s in stores * 2)
        )
        returned = [r.user_id for result in results for r in result]
        assert sorted(returned) == sorted(users)
        keeper = await stores[1].presence.get_user(EV, "keeper")
        assert keeper is not None and keeper.presence == "online"
    finally:
        for s in stores:
            await s.close()


async def test_raising_handler_is_counted_and_reader_survives(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisStore(redis_url)
    received: list[bytes] = []

    def broken(_topic: str, _payload: bytes) -> None:
        raise ValueError("boom")

    try:
        await store.pubsub.subscribe("bad", broken)
        await store.pubsub.subscribe("good", lambda _topic, payload: received.append(payload))
        await store.pubsub.publish("bad", b"1")
        await store.pubsub.publish("good", b"2")
        await eventually(lambda: received == [b"2"])
        assert store.pubsub.handler_errors == 1
        assert any("bad" in r.getMessage() and r.exc_info for r in caplog.records)
    finally:
        await store.close()


async def test_publishes_made_without_waiting_arrive_in_order(redis_url: str) -> None:
    """A PUBLISH returns before Redis answers it; what one node publishes still arrives in the order
    it was published (one command connection, commands queued as they are made)."""
    store = RedisStore(redis_url)
    received: list[bytes] = []
    try:
        await store.pubsub.subscribe("t", lambda _topic, payload: received.append(payload))
        sent = [str(i).encode() for i in range(300)]
        for payload in sent:
            await store.pubsub.publish("t", payload)
        await eventually(lambda: len(received) >= len(sent))
        assert received == sent
        assert store.pubsub.publish_errors == 0
    finally:
        await store.close()


async def test_a_publish_redis_never_took_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Nobody waits for a PUBLISH's answer, so a Redis that cannot be reached is not raised to the
    publisher: it is counted, shown in /metrics and logged, never lost silently."""
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0")
    metrics = HubMetrics()
    fanout = Fanout(store.pubsub, metrics)
    try:
        await fanout.publish("watch:ev", Outbound("candidate.status", {"user_id": "c1"}))
        await eventually(lambda: store.pubsub.publish_errors == 1, what="the failed PUBLISH counted")
        assert "proctorhub_publish_failures 1.0" in generate_latest(metrics.registry).decode()
        assert any("PUBLISH failed" in r.getMessage() for r in caplog.records)
    finally:
        with contextlib.suppress(Exception):
            await store.close()


async def test_reader_resubscribes_after_connection_killed(redis_url: str) -> None:
    store = RedisStore(redis_url)
    admin = aioredis.Redis.from_url(redis_url)
    received: list[bytes] = []
    try:
        await store.pubsub.subscribe("t", lambda _topic, payload: received.append(payload))
        await store.pubsub.publish("t", b"before")
        await eventually(lambda: received == [b"before"])
        assert await admin.client_kill_filter(_type="pubsub") >= 1
        await _publish_until_received(store, received, timeout=10.0)
    finally:
        await admin.aclose()
        await store.close()


async def test_reader_survives_redis_restart() -> None:
    server = start_redis()
    store = RedisStore(server.url)
    received: list[bytes] = []
    try:
        await store.pubsub.subscribe("t", lambda _topic, payload: received.append(payload))
        await store.pubsub.publish("t", b"before")
        await eventually(lambda: received == [b"before"])
        server.stop()
        await eventually(lambda: store.pubsub.read_errors >= 1, timeout=30.0)
        server = start_redis(server.port)
        await _publish_until_received(store, received, timeout=30.0)
    finally:
        await store.close()
        server.stop()


async def test_a_pubsub_connection_that_hears_nothing_is_opened_again(redis_url: str) -> None:
    """Redis stops answering without closing anything (every client paused): the health PING gets no
    answer, the connection counts as lost, and a new one subscribes again once Redis answers."""
    client = connect(redis_url)
    pubsub = RedisPubSub(client, health_s=0.2)
    admin = aioredis.Redis.from_url(redis_url)
    received: list[bytes] = []
    try:
        await pubsub.subscribe("t", lambda _topic, payload: received.append(payload))
        await admin.execute_command("CLIENT", "PAUSE", "1500", "ALL")
        await eventually(lambda: pubsub.read_errors >= 1, timeout=5.0, what="the silent connection lost")
        await _publish_until_received(pubsub, received, timeout=10.0)
        assert pubsub.epoch >= 1
    finally:
        await pubsub.close()
        await admin.aclose()
        await client.aclose(close_connection_pool=True)


def test_pubsub_delivers_on_uvloop(redis_server: RedisServer) -> None:
    """On uvloop, the loop the hub serves on, whose transports are not asyncio's classes: the
    subscriber connection still takes the transport over and hands out each message in order."""

    async def run() -> list[bytes]:
        store = RedisStore(redis_server.url)
        received: list[bytes] = []
        try:
            await store.pubsub.subscribe("t", lambda _topic, payload: received.append(payload))
            for i in range(50):
                await store.pubsub.publish("t", str(i).encode())
            await eventually(lambda: len(received) >= 50)
            return received
        finally:
            await store.close()

    assert uvloop.run(run()) == [str(i).encode() for i in range(50)]


async def test_unsubscribe_leaves_the_redis_channel(redis_url: str) -> None:
    store = RedisStore(redis_url)
    admin = aioredis.Redis.from_url(redis_url)

    async def subscribers() -> list[int]:
        counts = await admin.pubsub_numsub("ph:topic:a", "ph:topic:b")
        return [count for _channel, count in counts]

    try:
        await store.pubsub.subscribe("a", lambda _topic, _payload: None)
        await store.pubsub.subscribe("b", lambda _topic, _payload: None)
        await store.pubsub.unsubscribe("a")
        for _ in range(200):
            if await subscribers() == [0, 1]:
                break
            await asyncio.sleep(0.01)
        assert await subscribers() == [0, 1]
    finally:
        await admin.aclose()
        await store.close()


async def test_ping_raises_when_unreachable() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(RedisConnectionError):
            await store.ping()
    finally:
        await store.close()


async def test_ping_ok(store: Store) -> None:
    await store.ping()


async def _publish_until_received(
    store: RedisStore | RedisPubSub, received: list[bytes], *, timeout: float
) -> None:
    """Messages published while the subscriber is away are lost; keep publishing until one lands."""
    pubsub = store if isinstance(store, RedisPubSub) else store.pubsub
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while b"after" not in received:
        if loop.time() > deadline:
            raise AssertionError("the reader never came back")
        with contextlib.suppress(RedisConnectionError):
            await pubsub.publish("t", b"after")
        await asyncio.sleep(0.05)


# both stores in lockstep

USERS = ["u1", "u2", "a:b"]
CONNS = [("c1", "n1"), ("c2", "n1"), ("c3", "n2")]
_user = st.sampled_from(USERS)
_conn = st.sampled_from(CONNS)
_dt = st.floats(min_value=0.0, max_value=30.0, allow_nan=False)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("connect"), _user, _conn, st.sampled_from([None, "Ann", ""])),
        st.tuples(st.just("disconnect"), _user, _conn),
        st.tuples(st.just("finish"), _user),
        st.tuples(st.just("video"), _user, st.sampled_from(["on", "off", "unknown"])),
        st.tuples(st.just("tick"), _dt),
        st.tuples(st.just("expire")),
        st.tuples(st.just("alive"), st.sampled_from(["n1", "n2"]), _dt),
        st.tuples(st.just("reap")),
    ),
    max_size=25,
)


async def _apply(store: Store, op: tuple, now: float) -> object:
    match op:
        case ("connect", user, (conn, node), name):
            socket = ref(user, f"{user}/{conn}", node)
            return await store.presence.connect(socket, role="candidate", name=name, now=now)
        case ("disconnect", user, (conn, node)):
            return await store.presence.disconnect(ref(user, f"{user}/{conn}", node), now=now, grace_s=GRACE)
        case ("finish", user):
            return await store.presence.finish(EV, user, now=now)
        case ("video", user, video):
            return await store.presence.set_video(EV, user, video)
        case ("expire",):
            return sorted(await store.presence.expire_graces(now), key=lambda r: r.user_id)
        case ("alive", node, ahead):
            return await store.presence.node_alive(node, now=now, until=now + ahead)
        case ("reap",):
            return sorted(
                await store.presence.reap_dead_nodes(now=now, grace_s=GRACE), key=lambda r: r.user_id
            )
    raise AssertionError(f"unknown op {op!r}")


async def _lockstep(url: str, ops: list[tuple]) -> None:
    await flush(url)
    memory, redis_store = MemoryStore(), RedisStore(url)
    try:
        now = 1000.0
        for op in ops:
            if op[0] == "tick":
                now += op[1]
                continue
            expected = await _apply(memory, op, now)
            assert await _apply(redis_store, op, now) == expected, op
            assert await redis_store.presence.list_users(EV) == await memory.presence.list_users(EV), op
            assert await redis_store.presence.count_users(EV) == await memory.presence.count_users(EV), op
    finally:
        await redis_store.close()


@settings(max_examples=50, deadline=None)
@given(ops=OPS)
def test_stores_agree_on_random_histories(redis_server: RedisServer, ops: list[tuple]) -> None:
    asyncio.run(_lockstep(redis_server.url, ops))


async def test_node_alive_tells_a_reaped_node_it_was_dropped(store: Store) -> None:
    assert await store.presence.node_alive("n1", now=90.0, until=100.0) is False  # first registration
    assert await store.presence.node_alive("n1", now=190.0, until=200.0) is True
    await store.presence.reap_dead_nodes(now=250.0, grace_s=GRACE)
    assert await store.presence.node_alive("n1", now=390.0, until=400.0) is False  # it stalled and was reaped


# rooms, tokens, counters


async def test_room_seq_counts_per_event(store: Store) -> None:
    assert [await store.allocation.next_room_seq("ev-a") for _ in range(3)] == [1, 2, 3]
    assert await store.allocation.next_room_seq("ev-b") == 1


async def test_rooms_are_listed_in_order_added_once_and_know_their_event(store: Store) -> None:
    assert await store.allocation.list_rooms(EV) == []
    await store.allocation.add_room(RoomRecord(EV, "r1", "ev-1", created_at=1.0))
    await store.allocation.add_room(RoomRecord(EV, "r1", "ev-1", created_at=1.0))  # adding twice is a no-op
    await store.allocation.add_room(RoomRecord(EV, "r2", "ev-2", created_at=2.0))
    assert [r.room_id for r in await store.allocation.list_rooms(EV)] == ["r1", "r2"]
    assert await store.allocation.room_members(EV) == {"r1": [], "r2": []}
    assert await store.allocation.room_event("r2") == EV
    assert await store.allocation.room_event("nowhere") is None


async def test_swap_token_keeps_one_token_per_user_and_room(store: Store) -> None:
    first = HeldToken(EV, "u1", "r1", "t1", "j1", 100.0)
    assert await store.tokens.get_token(EV, "u1", "r1") is None
    assert await store.tokens.swap_token(first, replaces=None) == first
    second = HeldToken(EV, "u1", "r1", "t2", "j2", 200.0)
    rival = HeldToken(EV, "u1", "r1", "t3", "j3", 210.0)
    assert await store.tokens.swap_token(second, replaces="j1") == second
    assert await store.tokens.swap_token(rival, replaces="j1") == second  # lost the race: gets the winner
    assert await store.tokens.swap_token(rival, replaces=None) == second
    assert await store.tokens.get_token(EV, "u1", "r1") == second
    assert await store.tokens.get_token(EV, "u1", "r2") is None


async def test_counters(store: Store) -> None:
    assert await store.events.get_counters(EV) == {}
    assert await store.events.incr_counter(EV, "tokens_refreshed") == 1
    assert await store.events.incr_counter(EV, "tokens_refreshed", 4) == 5
    assert await store.events.get_counters(EV) == {"tokens_refreshed": 5}


# allocation


async def test_lock_with_fencing(store: Store) -> None:
    first = await store.locks.acquire_lock("alloc:ev1", "node-a", now=100.0, ttl_s=5)
    assert first is not None
    assert await store.locks.acquire_lock("alloc:ev1", "node-b", now=101.0, ttl_s=5) is None
    again = await store.locks.acquire_lock("alloc:ev1", "node-a", now=101.0, ttl_s=5)  # re-entry extends
    assert again is not None and again > first
    await store.locks.release_lock("alloc:ev1", "node-b")  # not the owner: no effect
    assert await store.locks.acquire_lock("alloc:ev1", "node-b", now=102.0, ttl_s=5) is None
    await store.locks.release_lock("alloc:ev1", "node-a")
    taken = await store.locks.acquire_lock("alloc:ev1", "node-b", now=102.0, ttl_s=5)
    assert taken is not None and taken > again


async def test_a_locked_read_is_the_lock_and_the_checks_reads_in_one_step(store: Store) -> None:
    lock = "timeline:ev1:c1"
    await online(store, "c1")
    await store.timelines.add_signals(EV, "c1", [b"s1", b"s2"])
    await store.timelines.put_alerts(EV, "c1", {"a1": b"x"})
    await store.backfill.put_requests(EV, "c1", {"bf-1": b"r1", "~release": b"99.5"})
    await store.backfill.put_requests(EV, "c2", {"bf-2": b"not c1's"})
    read = await store.timelines.locked_read(EV, "c1", lock=lock, owner="node-a", now=100.0, ttl_s=5)
    assert read is not None
    assert sorted(read.signals) == [b"s1", b"s2"]
    assert read.alerts == {"a1": b"x"}
    assert read.user is not None and read.user == await store.presence.get_user(EV, "c1")
    assert read.backfill == {"bf-1": b"r1", "~release": b"99.5"}
    assert read.backfill == await store.backfill.get_requests(EV, "c1")
    # The lock is the lock store's: held by node-a until 105, taken by no one else, nothing read.
    assert await store.locks.acquire_lock(lock, "node-b", now=101.0, ttl_s=5) is None
    assert await store.timelines.locked_read(EV, "c1", lock=lock, owner="node-b", now=101.0, ttl_s=5) is None
    again = await store.locks.acquire_lock(lock, "node-a", now=101.0, ttl_s=5)
    assert again is not None and again > read.fence
    later = await store.timelines.locked_read(EV, "c1", lock=lock, owner="node-b", now=106.5, ttl_s=5)
    assert later is not None and later.fence > again
    await store.locks.release_lock(lock, "node-b")
    assert await store.locks.acquire_lock(lock, "node-a", now=107.0, ttl_s=5) is not None
    unknown = await store.timelines.locked_read(EV, "c9", lock="timeline:ev1:c9", owner="n", now=0.0, ttl_s=5)
    assert unknown == CheckRead(1, [], {}, None)


async def test_save_allocation_is_fenced_moves_seats_and_returns_the_seated(store: Store) -> None:
    await online(store, "c:1")
    await online(store, "c2")
    await store.allocation.add_room(RoomRecord(EV, "r1", "n1"))
    stale = await store.locks.acquire_lock(f"alloc:{EV}", "node-a", now=0.0, ttl_s=1)
    fresh = await store.locks.acquire_lock(f"alloc:{EV}", "node-b", now=5.0, ttl_s=1)  # a's lock ran out
    assert stale is not None and fresh is not None
    meta = {"open": True, "proctors": ["p1"], "unwatched_since": None, "watched_since": 5.0}
    refused = await store.allocation.save_allocation(
        EV, fence=stale, rooms={"r9": {"x": 1}}, shortage={"x": 1}, seat=[("c2", "r1")], unseat=[]
    )
    assert refused is None
    assert await store.allocation.load_allocation(EV) == {}
    assert await store.allocation.room_members(EV) == {"r1": []}
    seated = await store.allocation.save_allocation(
        EV, fence=fresh, rooms={"r1": meta}, shortage=None, seat=[("c:1", "r1"), ("c2", "r1")], unseat=[]
    )
    assert seated is not None and {r.user_id: r.room_id for r in seated} == {"c:1": "r1", "c2": "r1"}
    assert await store.allocation.load_allocation(EV) == {"rooms": {"r1": meta}, "shortage": None}
    assert await store.allocation.room_proctors(EV, "r1") == ["p1"]
    assert await store.allocation.room_proctors(EV, "r2") == []
    assert await store.allocation.room_members(EV) == {"r1": ["c2", "c:1"]}
    assert (await store.presence.get_user(EV, "c:1")).room_id == "r1"  # type: ignore[union-attr]
    report = {"proctors": 1, "rooms": 2, "unwatched": 1}
    assert (
        await store.allocation.save_allocation(
            EV, fence=fresh, rooms={}, shortage=report, seat=[], unseat=[("c2", "r1")]
        )
        == []
    )
    assert await store.allocation.room_members(EV) == {"r1": ["c:1"]}
    assert (await store.allocation.load_allocation(EV))["shortage"] == report
    await store.allocation.save_allocation(EV, fence=fresh, rooms={}, shortage=KEEP, seat=[], unseat=[])
    assert (await store.allocation.load_allocation(EV))["shortage"] == report  # kept
    assert await store.allocation.get_room(EV, "r1") == RoomRecord(EV, "r1", "n1")
    assert await store.allocation.get_room(EV, "r2") is None


async def test_a_lease_is_renewed_by_its_owner_only_and_names_its_owner(store: Store) -> None:
    locks = store.locks
    fence = await locks.acquire_lock("lease", "node-a", now=10.0, ttl_s=3)
    assert await locks.lock_owner("lease", now=11.0) == "node-a"
    assert await locks.renew_lock("lease", "node-b", now=11.0, ttl_s=3) is False
    assert await locks.renew_lock("lease", "node-a", now=12.0, ttl_s=3) is True  # until 15
    assert await locks.acquire_lock("lease", "node-b", now=14.0, ttl_s=3) is None
    assert await locks.lock_owner("lease", now=15.0) is None  # ran out
    assert await locks.renew_lock("lease", "node-a", now=15.5, ttl_s=3) is False  # too late
    taken = await locks.acquire_lock("lease", "node-b", now=15.5, ttl_s=3)
    assert fence is not None and taken is not None and taken > fence
    assert await locks.lock_owner("lease", now=16.0) == "node-b"
    assert await locks.lock_owner("nothing", now=16.0) is None


async def test_node_channels_reach_the_nodes_that_hold_a_user(store: Store) -> None:
    got: list[bytes] = []
    store.pubsub.on_node("k", got.append)
    await store.pubsub.listen("n1")
    await online(store, "u1", conn="n1/1", node="n1")
    assert await store.pubsub.send_to_user(EV, "u1", "k", b"hello u1") == 1
    await store.pubsub.send("n1", "k", b"to n1")
    await eventually(lambda: got == [b"hello u1", b"to n1"])


async def test_a_user_message_reaches_each_node_of_the_user_once(redis_url: str) -> None:
    nodes = [RedisStore(redis_url), RedisStore(redis_url), RedisStore(redis_url)]
    got: dict[str, list[bytes]] = {"n1": [], "n2": [], "n3": []}
    try:
        for name, node in zip(got, nodes, strict=True):
            node.pubsub.on_node("k", got[name].append)
            await node.pubsub.listen(name)
        for conn, node in (("n1/1", "n1"), ("n1/2", "n1"), ("n2/7", "n2")):  # two tabs on n1, one on n2
            await online(nodes[0], "u1", conn=conn, node=node)
        assert await nodes[2].pubsub.send_to_user(EV, "u1", "k", b"warn") == 2
        assert await nodes[2].pubsub.send_to_user(EV, "nobody", "k", b"lost") == 0
        await eventually(lambda: got["n1"] == [b"warn"] and got["n2"] == [b"warn"])
        assert got["n3"] == []
    finally:
        for node in nodes:
            await node.close()


# webhook inbox (a durable queue), dedupe marks, room names


async def test_webhook_queue_round_trip(store: Store) -> None:
    payloads = [b'{"n": 1}', b"\x00\xffnot utf-8", b'{"n": 3}']
    ids = [await store.webhooks.append(p) for p in payloads]
    assert len(set(ids)) == 3 and await store.webhooks.backlog() == 3
    first = await store.webhooks.claim("a", count=2, block_s=0, min_idle_s=60)
    rest = await store.webhooks.claim("a", count=10, block_s=0, min_idle_s=60)
    assert first + rest == list(zip(ids, payloads, strict=True))  # new entries in order of arrival
    assert await store.webhooks.claim("b", count=10, block_s=0, min_idle_s=60) == []  # all pending on a
    await store.webhooks.ack(ids[:2])
    await store.webhooks.ack([])
    assert await store.webhooks.backlog() == 1
    await store.webhooks.ack(ids[2:])
    assert await store.webhooks.backlog() == 0


async def test_webhook_idle_entries_go_to_another_consumer(store: Store) -> None:
    kept = await store.webhooks.append(b"kept")
    acked = await store.webhooks.append(b"acked")
    assert len(await store.webhooks.claim("dead-node", count=10, block_s=0, min_idle_s=60)) == 2
    await store.webhooks.ack([acked])
    await asyncio.sleep(0.1)
    assert await store.webhooks.claim("b", count=10, block_s=0, min_idle_s=60) == []  # not idle enough
    assert await store.webhooks.claim("b", count=10, block_s=0, min_idle_s=0.05) == [(kept, b"kept")]
    assert await store.webhooks.claim("c", count=10, block_s=0, min_idle_s=60) == []  # b holds it now
    assert await store.webhooks.backlog() == 1


async def test_webhook_claim_blocks_until_an_entry_arrives(store: Store) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await store.webhooks.claim("a", count=10, block_s=0.2, min_idle_s=60) == []
    assert loop.time() - started >= 0.15
    waiting = asyncio.create_task(store.webhooks.claim("a", count=10, block_s=5, min_idle_s=60))
    await asyncio.sleep(0.05)
    entry = await store.webhooks.append(b"late")
    assert await asyncio.wait_for(waiting, 2) == [(entry, b"late")]


async def test_webhook_park_keeps_the_entry_out_of_the_queue(store: Store) -> None:
    entry = await store.webhooks.append(b"poison")
    assert await store.webhooks.claim("a", count=1, block_s=0, min_idle_s=60) == [(entry, b"poison")]
    await store.webhooks.park(entry, b"poison", error="ValueError: bad")
    assert await store.webhooks.backlog() == 0
    assert await store.webhooks.parked() == [(entry, b"poison", "ValueError: bad")]
    assert await store.webhooks.claim("b", count=10, block_s=0, min_idle_s=0) == []


async def test_seen_and_mark_seen_share_once_keys(store: Store) -> None:
    assert await store.dedupe.seen([], now=0.0) == []
    assert await store.dedupe.seen(["w:a", "w:b"], now=100.0) == [False, False]
    await store.dedupe.mark_seen(["w:a"], now=100.0, ttl_s=10)
    assert await store.dedupe.seen(["w:a", "w:b"], now=105.0) == [True, False]
    assert await store.dedupe.seen(["w:a"], now=110.5) == [False]  # ttl ran out
    assert not await store.dedupe.once("w:a", now=105.0, ttl_s=10)  # marked: once agrees
    assert await store.dedupe.once("w:c", now=105.0, ttl_s=10)
    assert await store.dedupe.seen(["w:c"], now=106.0) == [True]


async def test_room_names(store: Store) -> None:
    assert await store.webhooks.room_name_of("r1") is None
    await store.webhooks.remember_room_name("r1", "proctorhub-ev1-1")
    await store.webhooks.remember_room_name("r1", "proctorhub-ev1-1")
    assert await store.webhooks.room_name_of("r1") == "proctorhub-ev1-1"


async def test_webhook_consumer_resumes_what_it_held_before_a_restart(
    store: Store, request: pytest.FixtureRequest
) -> None:
    ids = [await store.webhooks.append(f"e{n}".encode()) for n in range(5)]
    assert len(await store.webhooks.claim("node-1", count=10, block_s=0, min_idle_s=60)) == 5
    await store.webhooks.ack(ids[1:2])
    if isinstance(store, RedisStore):  # a restart: a new store object on the same Redis
        restarted: Store = RedisStore(request.getfixturevalue("redis_server").url)
    else:  # the memory store's restart is forgetting which consumers already read back
        store.webhooks._wh_resumed.clear()  # type: ignore[attr-defined]
        restarted = store
    try:
        assert await restarted.webhooks.claim("node-2", count=10, block_s=0, min_idle_s=60) == []
        first = await restarted.webhooks.claim("node-1", count=2, block_s=0, min_idle_s=60)
        second = await restarted.webhooks.claim("node-1", count=2, block_s=0, min_idle_s=60)
        third = await restarted.webhooks.claim("node-1", count=2, block_s=0, min_idle_s=60)
        assert [i for i, _ in first + second + third] == [ids[0], *ids[2:]]
        assert await restarted.webhooks.claim("node-1", count=2, block_s=0, min_idle_s=60) == []
    finally:
        if restarted is not store:
            await restarted.close()


# LTI


def lti_platform(platform_id: str, issuer: str = "https://lms.example", client_id: str = "c1") -> LtiPlatform:
    return LtiPlatform(
        platform_id,
        issuer,
        client_id,
        ["d1", "d:2"],
        f"{issuer}/auth",
        f"{issuer}/token",
        f"{issuer}/jwks",
        {"room_size": 5, "name": "Exam"},
        created_at=float(len(platform_id)),
    )


async def test_lti_platforms_are_unique_per_issuer_and_client_id(store: Store) -> None:
    assert await store.lti.add_platform(lti_platform("p1"))
    assert not await store.lti.add_platform(lti_platform("p22"))  # same issuer and client_id
    assert not await store.lti.add_platform(lti_platform("p1", client_id="other"))  # same id
    assert await store.lti.add_platform(lti_platform("p333", client_id="c:2"))
    assert await store.lti.get_platform("p1") == lti_platform("p1")
    assert [p.platform_id for p in await store.lti.list_platforms()] == ["p1", "p333"]
    assert await store.lti.get_platform("nope") is None


async def test_lti_platform_delete_frees_its_issuer(store: Store) -> None:
    await store.lti.add_platform(lti_platform("p1"))
    assert await store.lti.delete_platform("p1")
    assert not await store.lti.delete_platform("p1")
    assert await store.lti.list_platforms() == []
    assert await store.lti.add_platform(lti_platform("p2"))


async def test_lti_login_is_taken_once_and_not_after_it_expired(store: Store) -> None:
    login = LtiLogin("s1", "p1", "n1", "b1", expires_at=1e9 + 60)
    await store.lti.put_login(login, now=1e9)
    assert await store.lti.take_login("s1", now=1e9 + 1) == login
    assert await store.lti.take_login("s1", now=1e9 + 1) is None
    await store.lti.put_login(LtiLogin("s2", "p1", "n2", "b2", expires_at=1e9 + 60), now=1e9)
    assert await store.lti.take_login("s2", now=1e9 + 61) is None
    assert await store.lti.take_login("unknown", now=1e9) is None


async def test_lti_attempts_are_kept_per_candidate_by_number(store: Store) -> None:
    def attempt(n: int, user: str = "u:1") -> LtiAttempt:
        return LtiAttempt(
            "p1",
            EV,
            user,
            {"id": "rl1"},
            n,
            f"sd{n}",
            "https://lms/start",
            "d1",
            1.5,
            acs={"assessment_control_url": "https://lms/acs", "actions": ["flag"]},
            identity={"name": "Ann"},
        )

    await store.lti.save_attempt(attempt(2))
    await store.lti.save_attempt(attempt(1))
    await store.lti.save_attempt(attempt(1, user="u"))
    assert await store.lti.attempts(EV, "u:1") == [attempt(1), attempt(2)]
    ended = LtiAttempt(**{**attempt(2).to_dict(), "ended_at": 9.0})
    await store.lti.save_attempt(ended)
    assert await store.lti.attempts(EV, "u:1") == [attempt(1), ended]
    assert await store.lti.attempts(EV, "nobody") == []


async def test_lti_tool_key_first_one_wins(store: Store) -> None:
    assert await store.lti.tool_key("pem-a") == "pem-a"
    assert await store.lti.tool_key("pem-b") == "pem-a"


async def test_lti_acs_calls_are_kept_per_candidate_and_replaced_by_id(store: Store) -> None:
    pending = AcsCall("a2", EV, "u:1", 1, "flag", {"action": "flag", "extra": [1]}, 2.0, "proctor-1")
    first = AcsCall("a1", EV, "u:1", 1, "terminate", {"action": "terminate"}, 1.0, "admin")
    await store.lti.save_acs_call(pending)
    await store.lti.save_acs_call(first)
    await store.lti.save_acs_call(AcsCall("a3", EV, "u", 1, "flag", {}, 0.5, "x"))
    assert await store.lti.acs_calls(EV, "u:1") == [first, pending]
    done = AcsCall(**{**pending.to_dict(), "state": "done", "answer": {"status": "running"}, "tries": 1})
    await store.lti.save_acs_call(done)
    assert await store.lti.acs_calls(EV, "u:1") == [first, done]
    assert await store.lti.acs_calls(EV, "nobody") == []
    assert [c.call_id for c in await store.lti.pending_acs_calls()] == ["a3", "a1"]
    await store.lti.save_acs_call(AcsCall(**{**first.to_dict(), "state": "failed"}))
    assert [c.call_id for c in await store.lti.pending_acs_calls()] == ["a3"]


# the outbox of events to the host app


def delivery(n: int, *, at: float = 10.0, created: float | None = None) -> Delivery:
    created = float(n) if created is None else created
    return Delivery(
        delivery_id=f"dlv_{n}",
        message_id=f"msg_{n}",
        event_id=EV,
        type="flag.added",
        url=f"http://127.0.0.1:9/{n}",
        body=f'{{"n": {n}, "text": "é"}}',
        created_at=created,
        next_at=at,
        window_from=created,
    )


async def test_outbox_round_trips_every_field_and_lists_newest_first(store: Store) -> None:
    full = replace(
        delivery(1),
        attempts=3,
        last_at=12.25,
        last_status=503,
        last_answer="HTTP 503",
        state="pending",
    )
    assert await store.outbox.add([full, delivery(2), delivery(3)]) == 3
    assert await store.outbox.add([]) == 0
    assert await store.outbox.add([delivery(1), delivery(4)]) == 1  # dlv_1 again: left as it was
    assert await store.outbox.get("dlv_1") == full
    assert await store.outbox.get("dlv_9") is None
    assert [d.delivery_id for d in await store.outbox.list()] == ["dlv_4", "dlv_3", "dlv_2", "dlv_1"]
    assert [d.delivery_id for d in await store.outbox.list(limit=2)] == ["dlv_4", "dlv_3"]
    assert await store.outbox.list(state="dead") == []
    assert await store.outbox.counts() == {"pending": 4, "delivered": 0, "dead": 0}


async def test_outbox_claims_each_due_delivery_once_earliest_first(store: Store) -> None:
    await store.outbox.add([delivery(1, at=30.0), delivery(2, at=10.0), delivery(3, at=20.0)])
    assert await store.outbox.claim("a", now=5.0, lease_s=60, limit=10) == []  # nothing due yet
    first = await store.outbox.claim("a", now=25.0, lease_s=60, limit=1)
    second = await store.outbox.claim("b", now=25.0, lease_s=60, limit=10)
    assert [d.delivery_id for d in first + second] == ["dlv_2", "dlv_3"]
    assert first[0].claim and second[0].claim and first[0].claim != second[0].claim
    assert first[0].claimed_until == 85.0
    assert await store.outbox.claim("c", now=30.0, lease_s=60, limit=10) == [
        replace(delivery(1, at=30.0), claim=(await store.outbox.get("dlv_1")).claim, claimed_until=90.0)
    ]
    assert await store.outbox.claim("c", now=80.0, lease_s=60, limit=10) == []  # every lease holds


async def test_outbox_lease_ends_and_the_late_sender_is_ignored(store: Store) -> None:
    await store.outbox.add([delivery(1)])
    (dead_sender,) = await store.outbox.claim("crashed", now=10.0, lease_s=30, limit=10)
    assert await store.outbox.claim("b", now=39.0, lease_s=30, limit=10) == []
    (taken,) = await store.outbox.claim("b", now=40.0, lease_s=30, limit=10)  # the lease ran out
    assert taken.claim != dead_sender.claim
    assert dead_sender.claim and taken.claim
    late = Attempt(at=41.0, delivered=True, answer="HTTP 200", status=200)
    assert not await store.outbox.settle("dlv_1", dead_sender.claim, late)
    assert (await store.outbox.get("dlv_1")).state == "pending"
    assert await store.outbox.settle("dlv_1", taken.claim, late)
    assert not await store.outbox.settle("dlv_1", taken.claim, late)  # a claim settles once
    assert (await store.outbox.get("dlv_1")).attempts == 1


async def test_outbox_failed_attempt_is_counted_and_due_again_later(store: Store) -> None:
    await store.outbox.add([delivery(1)])
    (claimed,) = await store.outbox.claim("a", now=10.0, lease_s=30, limit=10)
    failed = Attempt(at=11.0, delivered=False, answer="HTTP 500", status=500, next_at=16.0)
    assert claimed.claim and await store.outbox.settle("dlv_1", claimed.claim, failed)
    held = await store.outbox.get("dlv_1")
    assert held == replace(
        delivery(1), attempts=1, next_at=16.0, last_at=11.0, last_status=500, last_answer="HTTP 500"
    )
    assert await store.outbox.claim("a", now=15.9, lease_s=30, limit=10) == []
    (again,) = await store.outbox.claim("a", now=16.0, lease_s=30, limit=10)
    timeout = Attempt(at=17.0, delivered=False, answer="timeout", next_at=30.0)
    assert again.claim and await store.outbox.settle("dlv_1", again.claim, timeout)
    held = await store.outbox.get("dlv_1")
    assert (held.attempts, held.last_status, held.last_answer) == (2, None, "timeout")


async def test_outbox_delivered_is_final_and_only_the_newest_are_kept(store: Store) -> None:
    store.outbox.keep_delivered = 2  # type: ignore[attr-defined]
    await store.outbox.add([delivery(n) for n in (1, 2, 3)])
    for claimed in await store.outbox.claim("a", now=10.0, lease_s=30, limit=10):
        ok = Attempt(at=12.5, delivered=True, answer="HTTP 204", status=204)
        assert claimed.claim and await store.outbox.settle(claimed.delivery_id, claimed.claim, ok)
    assert await store.outbox.claim("a", now=1000.0, lease_s=30, limit=10) == []
    assert [d.delivery_id for d in await store.outbox.list(state="delivered")] == ["dlv_3", "dlv_2"]
    assert await store.outbox.get("dlv_1") is None  # the oldest delivered one made room
    held = await store.outbox.get("dlv_3")
    assert (held.state, held.delivered_at, held.attempts, held.claim) == ("delivered", 12.5, 1, None)
    assert await store.outbox.counts() == {"pending": 0, "delivered": 2, "dead": 0}


async def test_outbox_dead_letters_come_back_on_retry(store: Store) -> None:
    await store.outbox.add([delivery(1), delivery(2, at=1000.0)])
    (claimed,) = await store.outbox.claim("a", now=10.0, lease_s=30, limit=10)
    give_up = Attempt(at=11.0, delivered=False, answer="connect failed")
    assert claimed.claim and await store.outbox.settle(claimed.delivery_id, claimed.claim, give_up)
    assert [d.delivery_id for d in await store.outbox.list(state="dead")] == [claimed.delivery_id]
    assert await store.outbox.counts() == {"pending": 1, "delivered": 0, "dead": 1}
    assert await store.outbox.retry("dlv_1", now=500.0) == "queued"
    held = await store.outbox.get("dlv_1")
    assert (held.state, held.next_at, held.window_from, held.attempts) == ("pending", 500.0, 500.0, 1)
    assert await store.outbox.list(state="dead") == []
    assert [d.delivery_id for d in await store.outbox.claim("b", now=500.0, lease_s=30, limit=10)] == [
        "dlv_1"
    ]
    assert await store.outbox.retry("nope", now=500.0) == "unknown"


async def test_outbox_retry_waits_for_a_sender_and_drops_its_claim(store: Store) -> None:
    await store.outbox.add([delivery(1)])
    (claimed,) = await store.outbox.claim("a", now=10.0, lease_s=30, limit=10)
    assert await store.outbox.retry("dlv_1", now=20.0) == "sending"
    assert (await store.outbox.get("dlv_1")).claim == claimed.claim  # nothing changed
    assert await store.outbox.retry("dlv_1", now=40.0) == "queued"  # the lease ran out
    ok = Attempt(at=41.0, delivered=True, answer="HTTP 200", status=200)
    assert claimed.claim and not await store.outbox.settle("dlv_1", claimed.claim, ok)
    assert len(await store.outbox.claim("b", now=40.0, lease_s=30, limit=10)) == 1


async def test_outbox_two_nodes_never_claim_the_same_delivery(redis_url: str) -> None:
    nodes = [RedisStore(redis_url) for _ in range(4)]
    try:
        await nodes[0].outbox.add([delivery(n, at=0.0) for n in range(200)])
        claimed: list[str] = []
        for _ in range(3):
            batches = await asyncio.gather(
                *(node.outbox.claim(f"n{i}", now=1.0, lease_s=60, limit=30) for i, node in enumerate(nodes))
            )
            claimed += [d.delivery_id for batch in batches for d in batch]
        assert len(claimed) == len(set(claimed)) == 200
    finally:
        for node in nodes:
            await node.close()


# backfill (extension E15)


async def test_backfill_requests_and_segments_are_kept_per_candidate(store: Store) -> None:
    assert await store.backfill.get_requests(EV, "c1") == {}
    await store.backfill.put_requests(EV, "c1", {"bf-1": b"a", "~release": b"5"})
    await store.backfill.put_requests(EV, "c1", {"bf-1": b"b", "bf-2": b"c"})
    await store.backfill.put_requests(EV, "c1", {})
    assert await store.backfill.get_requests(EV, "c1") == {"bf-1": b"b", "bf-2": b"c", "~release": b"5"}
    assert await store.backfill.get_requests(EV, "c2") == {}
    assert await store.backfill.get_segment(EV, "c1", "s1") is None
    await store.backfill.put_segment(EV, "c1", "s1", b"one")
    await store.backfill.put_segment(EV, "c1", "s1", b"two")
    await store.backfill.put_segment(EV, "c1", "s2", b"three")
    assert await store.backfill.get_segment(EV, "c1", "s1") == b"two"
    assert await store.backfill.list_segments(EV, "c1") == {"s1": b"two", "s2": b"three"}
    assert await store.backfill.list_segments(EV, "c2") == {}
