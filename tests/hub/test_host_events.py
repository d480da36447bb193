"""Signed events to the host app, through a real hub and a real receiver on 127.0.0.1.

The receiver checks every signature with its own few lines of hmac and base64 (the Standard Webhooks
rule, written here from the specification), never with the hub's code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.client import login, token
from tests.conftest import API_KEY, SECRET, HubFactory, create_event, flush
from tests.polling import eventually
from tests.servers import HubProcess, RedisServer, free_port, start_redis

KEY = bytes(range(100, 132))
EVENTS_SECRET = "whsec_" + base64.b64encode(KEY).decode()
ADMIN = {"Authorization": f"Bearer {API_KEY}"}


def verified(headers: dict[str, str], body: bytes, key: bytes = KEY) -> bool:
    """Standard Webhooks verification, independent of the hub: HMAC-SHA256 of `id.timestamp.body`."""
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    wanted = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    given = [s.partition(",") for s in headers["webhook-signature"].split()]
    return any(v == "v1" and hmac.compare_digest(sig, wanted) for v, _, sig in given)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128  # the hub sends many at once (the default, 5, drops connections)

    def handle_error(self, request: object, client_address: object) -> None:
        return None  # a sender that went away mid-answer (a killed hub) is no failure of the test


@dataclass
class Receiver:
    """An HTTP server in a thread: answers the scripted statuses first, then `default`."""

    port: int
    answers: list[int] = field(default_factory=list)
    default: int = 200
    requests: list[Received] = field(default_factory=list)
    server: Server | None = None
    held: threading.Event | None = None
    """When set: requests wait (up to 30 s) until it is released before they are answered."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> Receiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                status = receiver.answers.pop(0) if receiver.answers else receiver.default
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.requests.append(Received(self.path, headers, body, status))
                if receiver.held is not None:
                    receiver.held.wait(30)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.held is not None:
            self.held.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def of_type(self, event_type: str) -> list[Received]:
        return [r for r in self.requests if r.payload["type"] == event_type]


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    started: list[Receiver] = []
    yield started
    for receiver in started:
        receiver.stop()


def receiver(receivers: list[Receiver], **kw: Any) -> Receiver:
    made = Receiver(kw.pop("port", None) or free_port(), **kw).start()
    receivers.append(made)
    return made


def events_env(*urls: str, **more: object) -> dict[str, object]:
    return {"HUB_EVENTS_URL": ",".join(urls), "HUB_EVENTS_SECRET": EVENTS_SECRET, **more}


def deliveries(hub_http: str, **params: str) -> dict[str, Any]:
    response = httpx.get(f"{hub_http}/api/v1/deliveries", params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


async def finish(hub_ws: str, event: str, candidate: str) -> None:
    client, _ = await login(hub_ws, token(SECRET, candidate, event=event))
    await client.send("finish")
    await client.send("ping")
    await client.expect("pong")  # messages are handled in order: the finish is done


async def test_flags_finishes_and_the_report_reach_every_url_signed(
    hub_factory: HubFactory, receivers: list[Receiver]
) -> None:
    first, second = receiver(receivers), receiver(receivers)
    hub = hub_factory(**events_env(first.url, second.url, HUB_EVENTS_REPORT_CHECK_S=0.2))
    create_event(hub, "he-1")
    candidate, _ = await login(hub.ws, token(SECRET, "cand-1", event="he-1", name="Ann"))
    proctor, _ = await login(hub.ws, token(SECRET, "proc-1", "proctor", "he-1"))
    await proctor.send("flag", {"candidate_id": "cand-1", "note": "second person", "severity": "high"})
    await proctor.expect("flag.added")
    await candidate.send("finish")
    for target in (first, second):
        await eventually(lambda t=target: t.of_type("report.ready"), timeout=10, what="report.ready")
        flag = target.of_type("flag.added")[0]
        assert flag.payload["data"] | {"ts": 0, "flag_id": ""} == {
            "event_id": "he-1",
            "flag_id": "",
            "candidate_id": "cand-1",
            "by": "proc-1",
            "note": "second person",
            "severity": "high",
            "ts": 0,
        }
        finished = target.of_type("candidate.finished")[0].payload["data"]
        assert (finished["candidate_id"], finished["name"], finished["flags"]) == ("cand-1", "Ann", 1)
        report = target.of_type("report.ready")[0].payload["data"]
        assert report["report_path"] == "/api/v1/events/he-1/report"
        assert [(c["candidate_id"], c["flags"]) for c in report["report"]["candidates"]] == [("cand-1", 1)]
        assert len(target.requests) == 3  # each once
        for request in target.requests:
            assert request.path == "/hooks"
            assert request.headers["content-type"] == "application/json"
            assert request.headers["webhook-id"].startswith("msg_")
            assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 300
            assert verified(request.headers, request.body)
            assert not verified(request.headers, request.body, key=bytes(32))  # the key matters
    assert sorted(r.headers["webhook-id"] for r in first.requests) == sorted(
        r.headers["webhook-id"] for r in second.requests
    )  # one message id per event, whatever the URL
    listed = deliveries(hub.http, state="delivered")
    assert listed["counts"] == {"pending": 0, "delivered": 6, "dead": 0}
    assert {(d["type"], d["url"], d["attempts"], d["last_status"]) for d in listed["deliveries"]} == {
        (t, r.url, 1, 200)
        for t in ("flag.added", "candidate.finished", "report.ready")
        for r in (first, second)
    }
    metrics = hub.metrics_text()
    assert 'proctorhub_host_events_attempts_total{outcome="delivered"} 6.0' in metrics


async def test_a_receiver_that_fails_first_gets_the_event_once_delivered(
    hub_factory: HubFactory, receivers: list[Receiver]
) -> None:
    flaky = receiver(receivers, answers=[500, 302])
    hub = hub_factory(**events_env(flaky.url, HUB_EVENTS_BACKOFF_BASE_S=0.2))
    create_event(hub, "he-2")
    await finish(hub.ws, "he-2", "cand-2")
    await eventually(
        lambda: [r.status for r in flaky.requests] == [500, 302, 200], timeout=10, what="3 tries"
    )
    ids = {r.headers["webhook-id"] for r in flaky.requests}
    assert len(ids) == 1  # one message, tried three times
    assert all(verified(r.headers, r.body) for r in flaky.requests)

    def delivered() -> dict[str, Any] | None:
        found = deliveries(hub.http)["deliveries"]
        return found[0] if found and found[0]["state"] == "delivered" else None

    shown = await eventually(delivered, what="the delivery marked delivered")
    assert (shown["attempts"], shown["last_status"], shown["last_answer"]) == (3, 200, "HTTP 200")
    assert len(flaky.requests) == 3  # nothing after the 2xx


async def test_a_dead_receiver_backs_off_is_listed_and_retried_by_hand(
    hub_factory: HubFactory, receivers: list[Receiver]
) -> None:
    down = receiver(receivers, default=503)
    hub = hub_factory(**events_env(down.url, HUB_EVENTS_BACKOFF_BASE_S=600))
    create_event(hub, "he-3")
    await finish(hub.ws, "he-3", "cand-3")
    await eventually(lambda: deliveries(hub.http, state="pending")["deliveries"][0]["attempts"] == 1)
    (pending,) = deliveries(hub.http, state="pending")["deliveries"]
    assert (pending["last_status"], pending["last_answer"], pending["type"]) == (
        503,
        "HTTP 503",
        "candidate.finished",
    )
    assert pending["next_attempt_at"] - pending["last_attempt_at"] >= 600_000  # backing off
    assert deliveries(hub.http, state="delivered")["deliveries"] == []
    down.default = 200
    retried = httpx.post(f"{hub.http}/api/v1/deliveries/{pending['delivery_id']}/retry", headers=ADMIN)
    assert retried.status_code == 202 and retried.json()["state"] == "pending"
    await eventually(lambda: deliveries(hub.http, state="delivered")["deliveries"], timeout=10)
    assert [r.status for r in down.requests] == [503, 200]
    assert httpx.post(f"{hub.http}/api/v1/deliveries/dlv_nope/retry", headers=ADMIN).status_code == 404
    shown = httpx.get(f"{hub.http}/api/v1/deliveries/{pending['delivery_id']}", headers=ADMIN).json()
    assert shown["payload"]["type"] == "candidate.finished" and shown["attempts"] == 2


async def test_after_the_retry_window_the_delivery_is_dead_until_retried(
    hub_factory: HubFactory, receivers: list[Receiver]
) -> None:
    nobody = free_port()  # nothing listens there: connection refused
    url = f"http://127.0.0.1:{nobody}/hooks"
    hub = hub_factory(**events_env(url, HUB_EVENTS_BACKOFF_BASE_S=0.1, HUB_EVENTS_RETRY_FOR_S=1))
    create_event(hub, "he-4")
    await finish(hub.ws, "he-4", "cand-4")
    (dead,) = await eventually(lambda: deliveries(hub.http, state="dead")["deliveries"], timeout=10)
    assert dead["attempts"] >= 2 and dead["last_status"] is None
    assert dead["last_answer"].startswith("network error") and dead["next_attempt_at"] is None
    back = receiver(receivers, port=nobody)
    assert (
        httpx.post(f"{hub.http}/api/v1/deliveries/{dead['delivery_id']}/retry", headers=ADMIN).status_code
        == 202
    )
    await eventually(lambda: back.of_type("candidate.finished"), timeout=10)
    assert verified(back.requests[0].headers, back.requests[0].body)
    assert 'proctorhub_host_events_attempts_total{outcome="dead"} 1.0' in hub.metrics_text()


async def test_nothing_is_lost_across_a_hub_restart_on_redis(
    hub_factory: HubFactory, receivers: list[Receiver], redis_server: RedisServer
) -> None:
    await flush(redis_server.url)
    port = free_port()
    url = f"http://127.0.0.1:{port}/hooks"
    env = events_env(url, REDIS_URL=redis_server.url, HMS_SIMULATOR="embedded", HUB_EVENTS_BACKOFF_BASE_S=0.5)
    hub = hub_factory(**env)
    create_event(hub, "he-5")
    await finish(hub.ws, "he-5", "cand-5")
    await eventually(lambda: deliveries(hub.http, state="pending")["deliveries"][0]["attempts"] >= 1)
    hub.stop()  # stopped (SIGTERM, then its shutdown) with the delivery pending
    back = receiver(receivers, port=port)
    again = hub_factory(**env)
    await eventually(
        lambda: back.of_type("candidate.finished"), timeout=10, what="the event after the restart"
    )
    assert verified(back.requests[0].headers, back.requests[0].body)
    (shown,) = deliveries(again.http)["deliveries"]
    assert shown["state"] == "delivered" and shown["attempts"] >= 2


def test_the_deliveries_api_is_for_the_api_key_and_admins_of_every_event(hub_factory: HubFactory) -> None:
    hub = hub_factory(**events_env("http://127.0.0.1:9/hooks"))
    event_admin = token(SECRET, "a", "admin", "he-6")
    everything = token(SECRET, "a", "admin", "*")
    url = f"{hub.http}/api/v1/deliveries"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {event_admin}"}).status_code == 403
    assert httpx.get(url, headers={"Authorization": f"Bearer {everything}"}).status_code == 200
    assert (
        httpx.get(url, params={"state": "lost"}, headers=ADMIN)
        .json()["error"]["message"]
        .startswith("state:")
    )
    assert httpx.get(url, params={"limit": "0"}, headers=ADMIN).status_code == 400


def test_an_event_can_send_elsewhere_or_nowhere(hub_factory: HubFactory) -> None:
    unsigned = hub_factory()
    response = httpx.post(
        f"{unsigned.http}/api/v1/events",
        json={"event_id": "he-7", "name": "x", "events_url": "https://exams.example/h"},
        headers=ADMIN,
    )
    assert response.status_code == 400 and "HUB_EVENTS_SECRET" in response.json()["error"]["message"]
    hub = hub_factory(**events_env("http://127.0.0.1:9/hooks"))
    bad = httpx.post(
        f"{hub.http}/api/v1/events",
        json={"event_id": "he-7", "name": "x", "events_url": "ftp://x"},
        headers=ADMIN,
    )
    assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("events_url:")
    create_event(hub, "he-7", events_url=" https://a.example/h , https://b.example/h")
    shown = httpx.get(f"{hub.http}/api/v1/events/he-7", headers=ADMIN).json()
    assert shown["events_url"] == "https://a.example/h,https://b.example/h"
    # an admin of the event alone may not point the hub's POSTs elsewhere (they may change the rest)
    event_admin = {"Authorization": f"Bearer {token(SECRET, 'a', 'admin', 'he-7')}"}
    moved = httpx.patch(
        f"{hub.http}/api/v1/events/he-7", json={"events_url": "http://169.254.169.254/"}, headers=event_admin
    )
    assert moved.status_code == 403 and "events_url" in moved.json()["error"]["message"]
    renamed = httpx.patch(f"{hub.http}/api/v1/events/he-7", json={"name": "renamed"}, headers=event_admin)
    assert renamed.status_code == 200 and renamed.json()["events_url"] == shown["events_url"]
    cleared = httpx.patch(f"{hub.http}/api/v1/events/he-7", json={"events_url": ""}, headers=ADMIN)
    assert cleared.status_code == 200 and cleared.json()["events_url"] == ""


async def test_a_camera_gap_is_opened_then_closed_for_the_host_app(
    hub_factory: HubFactory, receivers: list[Receiver]
) -> None:
    target = receiver(receivers)
    hub = hub_factory(**events_env(target.url, RECORDING_GAP_THRESHOLD_S=0.5))
    create_event(hub, "he-8")
    proctor, _ = await login(hub.ws, token(SECRET, "proc-8", "proctor", "he-8"))
    candidate, _ = await login(hub.ws, token(SECRET, "cand-8", event="he-8"))
    assign = await candidate.expect("room.assign")
    await candidate.send("ack", {"id": assign["id"]})
    room = assign["data"]["room_id"]
    for video in (True, False):
        await candidate.send("media.status", {"room_id": room, "joined": True, "video": video, "audio": True})

    def camera_off(state: str) -> Any:
        # other alerts may come first (a recording's): only this gap's open and close count
        return lambda m: (
            m["data"]["state"] == state and m["data"]["detail"].get("cause") == "video_unpublished"
        )

    opened = await proctor.expect("alert", camera_off("open"), timeout=10)
    await candidate.send("media.status", {"room_id": room, "joined": True, "video": True, "audio": True})
    closed = await proctor.expect("alert", camera_off("closed"), timeout=10)

    def sent(event_type: str) -> list[Received]:
        alert_id = opened["data"]["alert_id"]
        return [r for r in target.of_type(event_type) if r.payload["data"]["alert_id"] == alert_id]

    # (events may arrive in any order: the alert's own state and times tell the story)
    await eventually(lambda: sent("alert.opened") and sent("alert.closed"), timeout=10, what="both")
    (sent_open,), (sent_closed,) = sent("alert.opened"), sent("alert.closed")
    assert sent_open.payload["data"] == {"event_id": "he-8", **opened["data"]}
    assert sent_closed.payload["data"] == {"event_id": "he-8", **closed["data"]}
    assert sent_open.headers["webhook-id"] != sent_closed.headers["webhook-id"]
    assert all(verified(r.headers, r.body) for r in target.requests)


async def test_two_nodes_send_each_event_once(
    hub_factory: HubFactory, receivers: list[Receiver], redis_server: RedisServer
) -> None:
    await flush(redis_server.url)
    target = receiver(receivers)
    env = events_env(target.url, REDIS_URL=redis_server.url, HMS_SIMULATOR="embedded")
    nodes = [hub_factory(**env), hub_factory(**env)]
    create_event(nodes[0], "he-9")
    for n in range(12):
        await finish(nodes[n % 2].ws, "he-9", f"cand-{n}")
    await eventually(lambda: len(target.of_type("candidate.finished")) >= 12, timeout=15)
    await eventually(lambda: deliveries(nodes[1].http)["counts"]["delivered"] == 12, timeout=10)
    ids = [r.headers["webhook-id"] for r in target.requests]
    assert len(ids) == len(set(ids)) == 12  # each delivered once, whichever node sent it


def metric(hub: HubProcess, line_start: str) -> float:
    for line in hub.metrics_text().splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_redis_outage_is_logged_once_counted_and_survived(
    hub_factory: HubFactory, receivers: list[Receiver]
) -> None:
    redis = start_redis(appendonly=True)
    try:
        target = receiver(receivers, default=503)
        hub = hub_factory(
            **events_env(
                target.url, REDIS_URL=redis.url, HMS_SIMULATOR="embedded", HUB_EVENTS_BACKOFF_BASE_S=0.3
            )
        )
        create_event(hub, "he-10")
        await finish(hub.ws, "he-10", "cand-10")
        await eventually(lambda: len(target.requests) >= 2, timeout=10, what="retries to a failing receiver")
        redis.stop(keep_data=True)
        failures = 'proctorhub_background_failures_total{name="host events delivery"}'
        await eventually(lambda: metric(hub, failures) >= 3, timeout=15, what="failures counted")
        assert hub.log().count("host events delivery failed") == 1  # then once a minute while it lasts
        target.default = 200
        redis = start_redis(redis.port, appendonly=True, workdir=redis.workdir)
        await eventually(
            lambda: target.requests[-1].status == 200, timeout=20, what="delivered after the outage"
        )
        assert "host events delivery works again" in hub.log()
        assert {r.headers["webhook-id"] for r in target.requests} == {
            target.requests[0].headers["webhook-id"]
        }
    finally:
        redis.stop()


async def test_a_crashed_senders_claim_runs_out_and_another_node_sends(
    hub_factory: HubFactory, receivers: list[Receiver], redis_server: RedisServer
) -> None:
    await flush(redis_server.url)
    target = receiver(receivers)
    target.held = threading.Event()  # the first attempt hangs: its sender dies holding the claim
    env = events_env(target.url, REDIS_URL=redis_server.url, HMS_SIMULATOR="embedded", HUB_EVENTS_TIMEOUT_S=1)
    first = hub_factory(**env)
    create_event(first, "he-11")
    await finish(first.ws, "he-11", "cand-11")
    await eventually(lambda: target.requests, timeout=10, what="the first attempt")
    first.kill()  # SIGKILL within the attempt's second: nothing recorded, the claim stays
    target.held.set()
    target.held = None
    second = hub_factory(**env)
    (shown,) = await eventually(lambda: deliveries(second.http, state="delivered")["deliveries"], timeout=20)
    assert shown["attempts"] == 1  # the dead node's attempt was never recorded
    assert len(target.requests) == 2  # sent again, once, after the claim ran out (at least once)
    assert target.requests[0].headers["webhook-id"] == target.requests[1].headers["webhook-id"]
    assert all(verified(r.headers, r.body) for r in target.requests)
