"""The producers' side of host events: a store failure never reaches the producer; when a report is ready."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry

from server.background import Background
from server.config import load_settings
from server.hostevents.catalog import finished_event
from server.hostevents.metrics import HostEventMetrics
from server.hostevents.producer import HostEvents
from server.hostevents.reports import report_ready
from server.recording.monitor.timeline import Rules, Signal, evaluate
from server.store.memory import MemoryStore
from server.store.records import EventConfig, UserRecord
from server.store.redis import RedisStore
from tests.polling import eventually
from tests.servers import free_port

SECRET = "whsec_" + "A" * 43 + "="
FINISHED = UserRecord("ev", "c1", "candidate", "Ann", "finished", 100.0)


def producer(
    outbox_of: MemoryStore | RedisStore, events: MemoryStore, **env: str
) -> tuple[HostEvents, HostEventMetrics, Background]:
    settings = load_settings({"HUB_EVENTS_URL": "http://127.0.0.1:9/h", "HUB_EVENTS_SECRET": SECRET, **env})
    metrics = HostEventMetrics(CollectorRegistry())
    background = Background(logging.getLogger("test.hostevents"))
    made = HostEvents(settings, events.events, outbox_of.outbox, metrics, background, lambda: 100.0)
    return made, metrics, background


async def test_an_unreachable_store_is_logged_once_and_counted_never_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = RedisStore(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    events = MemoryStore()
    host, metrics, background = producer(down, events)
    try:
        with caplog.at_level(logging.WARNING, logger="proctorhub.hostevents"):
            for _ in range(3):
                host.emit(finished_event(FINISHED))  # returns at once, whatever the store does
            await eventually(lambda: metrics.queue_errors._value.get() == 3, timeout=10)
        failures = [r for r in caplog.records if "writing to the outbox failed" in r.getMessage()]
        assert len(failures) == 1  # then once a minute while it lasts
    finally:
        await background.stop()
        await down.close()


async def test_events_go_to_their_event_urls_or_the_hubs_or_nowhere() -> None:
    store = MemoryStore()
    host, metrics, background = producer(store, store)
    await store.events.create_event(EventConfig("ev", "E", events_url="http://a/1,http://b/2"))
    await store.events.create_event(EventConfig("quiet", "Q", events_url=""))
    assert await host.queue(finished_event(FINISHED)) == 2
    assert await host.queue(finished_event(FINISHED)) == 0  # the same fact again: stored once
    assert await host.queue(finished_event(UserRecord("quiet", "c1", "candidate"))) == 0
    assert await host.queue(finished_event(UserRecord("other", "c1", "candidate"))) == 1  # HUB_EVENTS_URL
    assert sorted(d.url for d in await store.outbox.list()) == [
        "http://127.0.0.1:9/h",
        "http://a/1",
        "http://b/2",
    ]
    assert metrics.queued.labels("candidate.finished")._value.get() == 3
    assert host.sends_for(None) and host.sends_for("http://x") and not host.sends_for("")
    await background.stop()


async def test_without_a_secret_nothing_is_queued() -> None:
    store = MemoryStore()
    settings = load_settings({})
    host = HostEvents(
        settings,
        store.events,
        store.outbox,
        HostEventMetrics(CollectorRegistry()),
        Background(logging.getLogger("t")),
        lambda: 1.0,
    )
    host.emit(finished_event(FINISHED))
    await asyncio.sleep(0)
    assert not host.enabled and not host.sends_for(None) and await store.outbox.list() == []


RULES = Rules(threshold_s=10, deadline_s=30)


def candidate(presence: str) -> UserRecord:
    return UserRecord("ev", "c1", "candidate", presence=presence)  # type: ignore[arg-type]


def test_a_report_is_ready_once_everyone_finished_and_every_recording_is_accounted_for() -> None:
    sat = [
        Signal("p:0", 0, "online"),
        Signal("m:1", 1, "media", room_id="r1", joined=True, video=True),
        Signal("join:p1", 1, "join", peer_id="p1", room_id="r1", session_id="s1"),
        Signal("f:50", 50, "finished"),
        Signal("leave:p1", 50, "leave", peer_id="p1", room_id="r1", session_id="s1"),
    ]
    awaited = evaluate(sat, 60, RULES)  # the session has not closed: the recording is still awaited
    closed = [*sat, Signal("close:s1", 55, "closed", room_id="r1", session_id="s1")]
    recorded = [
        *closed,
        Signal("rec:p1", 70, "recorded", peer_id="p1", room_id="r1", session_id="s1", duration_s=49),
    ]
    assert not report_ready([candidate("finished")], [awaited])
    assert not report_ready([candidate("finished")], [evaluate(closed, 60, RULES)])  # due at 85
    assert report_ready([candidate("finished")], [evaluate(closed, 90, RULES)])  # declared missing
    assert report_ready([candidate("finished")], [evaluate(recorded, 75, RULES)])
    assert not report_ready([candidate("offline")], [evaluate(recorded, 75, RULES)])
    assert not report_ready([], [])
