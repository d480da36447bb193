"""What the host app is told: payloads, message ids and alert transitions."""

from __future__ import annotations

import json

from server.hostevents.catalog import (
    ALERT_CLOSED,
    ALERT_OPENED,
    alert_events,
    deliveries,
    finished_event,
    flag_event,
)
from server.store.records import FlagRecord, UserRecord


def alert(state: str, *, ended_at: int | None = None, **detail: object) -> dict[str, object]:
    return {
        "alert_id": "video.gap:c1:1000",
        "kind": "video.gap",
        "state": state,
        "candidate_id": "c1",
        "room_id": "r1",
        "started_at": 1000,
        "ended_at": ended_at,
        "detail": {"cause": "socket_lost", **detail},
    }


def kinds(before: dict[str, object] | None, after: dict[str, object]) -> list[tuple[str, object]]:
    return [(e.type, e.data["state"]) for e in alert_events("ev", before, after)]


def test_alert_transitions() -> None:
    assert kinds(None, alert("open")) == [(ALERT_OPENED, "open")]
    assert kinds(alert("open"), alert("closed", ended_at=9000)) == [(ALERT_CLOSED, "closed")]
    # found only after it ended: opened, then closed
    assert kinds(None, alert("closed", ended_at=9000)) == [(ALERT_OPENED, "open"), (ALERT_CLOSED, "closed")]
    # a closed alert whose details change again, or an open one whose cause is refined: nothing new
    assert kinds(alert("closed", ended_at=9000), alert("closed", ended_at=9500)) == []
    assert kinds(alert("open"), alert("open", peer_id="p1")) == []
    opened = alert_events("ev", None, alert("closed", ended_at=9000))[0]
    assert opened.data["ended_at"] is None


def test_one_fact_makes_one_message_id_and_one_delivery_per_url() -> None:
    first = alert_events("ev", None, alert("open"))[0]
    again = alert_events("ev", None, alert("open"))[0]
    closed = alert_events("ev", alert("open"), alert("closed", ended_at=2000))[0]
    assert first.message_id == again.message_id != closed.message_id
    assert first.message_id != alert_events("ev2", None, alert("open"))[0].message_id
    urls = ("http://a/1", "http://b/2")
    made = deliveries(first, urls, 1_700_000_000.5)
    assert [d.url for d in made] == list(urls)
    assert len({d.delivery_id for d in made}) == 2
    assert {d.message_id for d in made} == {first.message_id}
    assert [d.delivery_id for d in deliveries(again, urls, 5.0)] == [d.delivery_id for d in made]
    assert all(d.state == "pending" and d.next_at == d.created_at == 1_700_000_000.5 for d in made)


def test_payloads_follow_standard_webhooks() -> None:
    flag = FlagRecord("f1", "ev", "c1", "p1", "looked away", "high", 1_700_000_000.25)
    (made,) = deliveries(flag_event(flag), ("http://a",), 1_700_000_001.0)
    assert json.loads(made.body) == {
        "type": "flag.added",
        "timestamp": "2023-11-14T22:13:21.000Z",
        "data": {
            "event_id": "ev",
            "flag_id": "f1",
            "candidate_id": "c1",
            "by": "p1",
            "note": "looked away",
            "severity": "high",
            "ts": 1_700_000_000_250,
        },
    }
    record = UserRecord("ev", "c1", "candidate", "Ann", "finished", 1_700_000_002.0, flags=2, open_alerts=1)
    finished = finished_event(record)
    assert (finished.type, finished.data) == (
        "candidate.finished",
        {"candidate_id": "c1", "name": "Ann", "finished_at": 1_700_000_002_000, "flags": 2, "open_alerts": 1},
    )
