"""Webhooks reach a real receiver as 100ms sends them (§3.1, §3.2), retried and dropped on schedule."""

from __future__ import annotations

import asyncio
import itertools
import re
import uuid

from tests.polling import eventually
from tests.simulator_support import (
    WEBHOOK_HEADER,
    WEBHOOK_SECRET,
    Receiver,
    receiving,
    running,
)

HEADERS = {WEBHOOK_HEADER: WEBHOOK_SECRET}
SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
NANOS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


async def test_events_arrive_with_the_envelope_and_the_secret_header() -> None:
    receiver = Receiver()
    async with receiving(receiver) as url, running(webhook_url=url, webhook_headers=HEADERS) as h:
        room = await h.create_room("exam-1")
        a = await h.join(room["id"], "cand-1")
        await eventually(lambda: len(receiver.events()) >= 2, what="2 webhooks")
        assert receiver.types() == ["session.open.success", "peer.join.success"]
        for request in receiver.requests:
            assert request.headers[WEBHOOK_HEADER.lower()] == WEBHOOK_SECRET
            assert request.headers["content-type"] == "application/json"
            event = request.body
            assert set(event) == {
                "version",
                "id",
                "app_id",
                "account_id",
                "template_id",
                "timestamp",
                "type",
                "data",
            }
            assert event["version"] == "2.0"
            assert uuid.UUID(event["id"]).version == 4
            assert (event["app_id"], event["account_id"]) == (h.config.app_id, h.config.account_id)
            assert event["template_id"] == "proctorhub-template"
            assert SECONDS.match(event["timestamp"])
        joined = receiver.events("peer.join.success")[0]["data"]
        assert joined["peer_id"] == a["peer_id"]
        assert NANOS.match(joined["joined_at"]) and NANOS.match(joined["session_started_at"])
        await eventually(lambda: [d.outcome for d in h.sim.deliveries] == ["delivered", "delivered"])


async def test_non_200_is_retried_at_the_configured_delays() -> None:
    receiver = Receiver(fail_first=2, fail_status=500)
    async with (
        receiving(receiver) as url,
        running(webhook_url=url, webhook_retry_delays=(0.1, 0.3, 1.0)) as h,
    ):
        room = await h.create_room("exam-1")
        await h.join(room["id"], "cand-1")
        await eventually(
            lambda: len(receiver.events("peer.join.success")) >= 3, timeout=5, what="3 peer.join.success"
        )
        await eventually(
            lambda: any(
                d.outcome == "delivered" and d.event_type == "peer.join.success" for d in h.sim.deliveries
            )
        )
        tries = [r for r in receiver.requests if r.body["type"] == "peer.join.success"]
        assert len({r.body["id"] for r in tries}) == 1
        gaps = [b.at - a.at for a, b in itertools.pairwise(tries)]
        assert 0.1 <= gaps[0] < 0.3, gaps
        assert 0.3 <= gaps[1] < 0.6, gaps
        join_log = [d for d in h.sim.deliveries if d.event_type == "peer.join.success"]
        assert [(d.attempt, d.status, d.outcome) for d in join_log] == [
            (0, 500, "retrying"),
            (1, 500, "retrying"),
            (2, 200, "delivered"),
        ]


async def test_an_event_is_dropped_after_three_retries() -> None:
    receiver = Receiver(fail_first=100)
    async with (
        receiving(receiver) as url,
        running(webhook_url=url, webhook_retry_delays=(0.05, 0.1, 0.2)) as h,
    ):
        room = await h.create_room("exam-1")
        await h.join(room["id"], "cand-1")
        await eventually(
            lambda: any(
                d.outcome == "dropped" for d in h.sim.deliveries if d.event_type == "peer.join.success"
            )
        )
        await asyncio.sleep(0.4)  # and nothing after that
        assert len(receiver.events("peer.join.success")) == 4
        outcomes = [d.outcome for d in h.sim.deliveries if d.event_type == "peer.join.success"]
        assert outcomes == ["retrying", "retrying", "retrying", "dropped"]
        log = (await h.http.get("/_sim/webhooks")).json()["deliveries"]  # the log over HTTP
        assert [d["outcome"] for d in log if d["event_type"] == "peer.join.success"] == outcomes


async def test_connection_errors_and_timeouts_count_as_failures() -> None:
    receiver = Receiver(slow_first=1, slow_s=0.5)
    async with (
        receiving(receiver) as url,
        running(webhook_url=url, webhook_timeout_s=0.2, webhook_retry_delays=(0.05, 0.05, 0.05)) as h,
    ):
        room = await h.create_room("exam-1")
        await h.join(room["id"], "cand-1")
        await eventually(lambda: len(receiver.events("peer.join.success")) >= 2, what="2 peer.join.success")
        await eventually(lambda: [d.outcome for d in h.sim.deliveries].count("delivered") == 2)
        join_log = [d for d in h.sim.deliveries if d.event_type == "peer.join.success"]
        assert [(d.error, d.outcome) for d in join_log] == [("timeout", "retrying"), (None, "delivered")]

    async with running(webhook_url="http://127.0.0.1:9/hook", webhook_retry_delays=(0.01, 0.01, 0.01)) as h:
        room = await h.create_room("exam-1")
        await h.join(room["id"], "cand-1")
        await eventually(lambda: sum(d.outcome == "dropped" for d in h.sim.deliveries) == 2)
        assert all(d.status is None and d.error for d in h.sim.deliveries)


async def test_a_room_webhook_replaces_the_workspace_one() -> None:
    workspace, per_room = Receiver(), Receiver()
    async with (
        receiving(workspace) as workspace_url,
        receiving(per_room) as room_url,
        running(webhook_url=workspace_url, webhook_headers=HEADERS) as h,
    ):
        staging = await h.create_room("staging-1", webhook={"url": room_url, "headers": {"X-Env": "staging"}})
        prod = await h.create_room("prod-1")
        await h.join(staging["id"], "cand-1")
        await h.join(prod["id"], "cand-2")
        await eventually(lambda: len(per_room.events()) >= 2, what="2 webhooks at per_room")
        await eventually(lambda: len(workspace.events()) >= 2, what="2 webhooks at workspace")
        assert {e["data"]["room_id"] for e in per_room.events()} == {staging["id"]}
        assert {e["data"]["room_id"] for e in workspace.events()} == {prod["id"]}
        assert per_room.requests[0].headers["x-env"] == "staging"
        assert WEBHOOK_HEADER.lower() not in per_room.requests[0].headers
        assert workspace.requests[0].headers[WEBHOOK_HEADER.lower()] == WEBHOOK_SECRET


async def test_lose_and_duplicate_faults() -> None:
    receiver = Receiver()
    async with receiving(receiver) as url, running(webhook_url=url) as h:
        room = await h.create_room("exam-1")
        h.sim.add_fault("webhook.lose", event_type="peer.join.success", count=1)
        h.sim.add_fault("webhook.duplicate", event_type="peer.leave.success", count=1)
        a = await h.join(room["id"], "cand-1")
        b = await h.join(room["id"], "cand-2")
        await h.media(a["peer_id"], "leave")
        await eventually(
            lambda: len(receiver.events()) >= 4, what="4 webhooks"
        )  # open, one join, the leave twice
        await asyncio.sleep(0.1)
        joins = receiver.events("peer.join.success")
        assert [e["data"]["peer_id"] for e in joins] == [b["peer_id"]]  # the first join was lost
        leaves = receiver.events("peer.leave.success")
        assert len(leaves) == 2 and leaves[0]["id"] == leaves[1]["id"]
        kinds = [(i.kind, i.event_type, i.peer_id) for i in h.sim.injected]
        assert kinds == [
            ("webhook.lose", "peer.join.success", a["peer_id"]),
            ("webhook.duplicate", "peer.leave.success", a["peer_id"]),
        ]
        assert h.sim.injected[0].event_id == next(
            e["id"] for e in h.sim.events if e["type"] == "peer.join.success"
        )
        assert "lost (injected)" in [d.outcome for d in h.sim.deliveries]


async def test_a_failed_attempt_is_retried_and_the_event_arrives_late() -> None:
    receiver = Receiver()
    async with (
        receiving(receiver) as url,
        running(webhook_url=url, webhook_retry_delays=(0.1, 0.2, 0.3)) as h,
    ):
        room = await h.create_room("exam-1")
        h.sim.add_fault("webhook.fail", event_type="peer.join.success", count=2)
        a = await h.join(room["id"], "cand-1")
        await eventually(lambda: len(receiver.events()) >= 2, what="2 webhooks")
        assert receiver.types() == ["session.open.success", "peer.join.success"]
        assert receiver.events("peer.join.success")[0]["data"]["peer_id"] == a["peer_id"]

        def joins() -> list:  # type: ignore[type-arg]
            return [d for d in h.sim.deliveries if d.event_type == "peer.join.success"]

        await eventually(lambda: len(joins()) == 3)
        assert [(d.attempt, d.outcome, d.error) for d in joins()] == [
            (0, "retrying", "attempt lost (injected)"),
            (1, "retrying", "attempt lost (injected)"),
            (2, "delivered", None),
        ]


async def test_delay_and_reorder_faults() -> None:
    receiver = Receiver()
    async with receiving(receiver) as url, running(webhook_url=url) as h:
        room = await h.create_room("exam-1")
        h.sim.add_fault("webhook.delay", event_type="session.open.success", seconds=0.3)
        await h.join(room["id"], "cand-1")
        await eventually(lambda: len(receiver.events()) >= 2, what="2 webhooks")
        assert receiver.types() == ["peer.join.success", "session.open.success"]
        gap = receiver.requests[1].at - receiver.requests[0].at
        assert gap >= 0.2, gap

        h.sim.add_fault("webhook.reorder", event_type="peer.join.success", count=1)
        await h.join(room["id"], "cand-2")
        await h.join(room["id"], "cand-3")
        await eventually(lambda: len(receiver.events()) >= 4, what="4 webhooks")
        users = [e["data"]["user_id"] for e in receiver.events("peer.join.success")]
        assert users == ["cand-1", "cand-3", "cand-2"]
        assert [i.kind for i in h.sim.injected] == ["webhook.delay", "webhook.reorder"]


async def test_probability_faults_are_repeatable_with_a_seed() -> None:
    async def lost(seed: int) -> list[str]:
        async with running(webhook_url="http://127.0.0.1:9/hook", seed=seed, webhook_retry_delays=()) as h:
            room = await h.create_room("exam-1")
            h.sim.add_fault("webhook.lose", probability=0.5)
            for n in range(20):
                await h.join(room["id"], f"cand-{n}")
            return [str(i.user_id) for i in h.sim.injected]

    first, second = await lost(7), await lost(7)
    assert first == second
    assert 3 < len(first) < 17
