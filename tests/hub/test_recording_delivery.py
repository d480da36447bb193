"""Webhooks as a lossy network delivers them (30 % of attempts lost, duplicates, reordering, 100ms's
retries) give the same timelines, alerts and report as every event delivered twice more, shuffled."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import API_KEY, HubFactory, create_event
from tests.polling import eventually
from tests.sitting import add_fault, sit, watcher

AUTH = {"Authorization": f"Bearer {API_KEY}"}
WEBHOOK_SECRET = "delivery-webhook-secret-" + "w" * 16
CANDIDATES = 30


async def snapshot(http: httpx.AsyncClient, event: str, ids: list[str]) -> dict[str, Any]:
    """What the hub knows of the event's recordings, without the parts that depend on the clock."""
    timelines = {}
    for candidate_id in ids:
        body = (
            await http.get(f"/api/v1/events/{event}/candidates/{candidate_id}/timeline", headers=AUTH)
        ).json()
        body.pop("now")
        timelines[candidate_id] = body
    report = (await http.get(f"/api/v1/events/{event}/report", headers=AUTH)).json()
    report.pop("generated_at")
    alerts = (await http.get(f"/api/v1/events/{event}/alerts", headers=AUTH)).json()["alerts"]
    return {"timelines": timelines, "report": report, "alerts": alerts}


async def samples(http: httpx.AsyncClient) -> dict[str, float]:
    """The hub's /metrics: sample (with its labels) -> value."""
    out = {}
    for line in (await http.get("/metrics", headers=AUTH)).text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


async def drained(http: httpx.AsyncClient) -> dict[str, float] | None:
    """The hub's metrics once every webhook it stored is settled (handled, a duplicate, or parked)."""
    m = await samples(http)
    settled = m["proctorhub_webhooks_processed_total"] + m["proctorhub_webhooks_duplicates_total"]
    settled += sum(v for k, v in m.items() if k.startswith("proctorhub_webhooks_parked_total"))
    return m if settled == m["proctorhub_webhooks_accepted_total"] else None


async def delivered(http: httpx.AsyncClient) -> bool:
    """The simulator has no webhook left to send: every event emitted has been tried, no retry waits."""
    emitted = {e["id"] for e in (await http.get("/hms-sim/_sim/events")).json()["events"]}
    deliveries = (await http.get("/hms-sim/_sim/webhooks")).json()["deliveries"]
    retrying = sum(1 for d in deliveries if d["outcome"] == "retrying")
    retried = sum(1 for d in deliveries if d["attempt"] > 0)
    return emitted <= {d["event_id"] for d in deliveries} and retrying == retried


async def settled_and_reconciled(http: httpx.AsyncClient) -> None:
    """Until 100ms has nothing left to send, the hub has handled all of it, and a reconciliation
    pass (which reads back what 100ms gave up on) has run from start to end since."""
    await eventually(lambda: delivered(http), timeout=30, what="every webhook sent or given up on")
    before = await eventually(lambda: drained(http), timeout=30, what="every stored webhook handled")
    passes = before["proctorhub_recording_reconciles_total"]
    await eventually(
        lambda: reconciled_since(http, passes),
        timeout=30,
        what="a reconciliation pass after the last webhook",
    )


async def reconciled_since(http: httpx.AsyncClient, passes: float) -> bool:
    # a pass ending after one that was maybe already running: it started after `passes` was read
    return (await samples(http))["proctorhub_recording_reconciles_total"] >= passes + 2


async def test_lossy_duplicated_shuffled_delivery_gives_the_same_timelines_and_report(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    hub = hub_factory(
        ARCHIVE_DIR=str(tmp_path),
        HMS_WEBHOOK_SECRET=WEBHOOK_SECRET,
        HMS_SIM_WEBHOOK_RETRY_DELAYS="0.2,0.5,1",
        HMS_SIM_RECORDING_DELAY_S="0.2",
        HMS_SIM_SEED="7",
        RECORDING_GAP_THRESHOLD_S="2",
        RECORDING_DEADLINE_S="2",
        RECORDING_RECONCILE_S="2",
    )
    event = "delivery"
    create_event(hub, event, room_size=10, expected_candidates=CANDIDATES)
    rng = random.Random(7)
    ids = [f"c{i:02d}" for i in range(CANDIDATES)]
    dropped, failed, dark, rejoin = ids[0:2], ids[2:3], ids[3:6], ids[6:9]
    async with httpx.AsyncClient(base_url=hub.http, timeout=30) as http:
        for kind, probability in (
            ("webhook.fail", 0.3),
            ("webhook.duplicate", 0.3),
            ("webhook.reorder", 0.3),
        ):
            await add_fault(http, kind=kind, probability=probability, seconds=0.5)
        for user_id in dropped:
            await add_fault(http, kind="recording.drop", user_id=user_id, count=1)
        for user_id in failed:
            await add_fault(http, kind="recording.fail", user_id=user_id, count=1)
        admin = await watcher(hub, "admin", "admin", event)
        candidates = {c.user_id: c for c in await asyncio.gather(*(sit(hub, event, u, http) for u in ids))}

        async def go_dark(user_id: str) -> None:
            await candidates[user_id].camera(False)
            await eventually(
                lambda: user_id in admin.opened("video.gap"), timeout=30, what=f"{user_id}'s gap alerted"
            )
            await candidates[user_id].camera(True)

        async def rejoin_media(user_id: str) -> None:
            # The page leaves the room and joins again with its token: a second peer, a second recording.
            old = candidates[user_id]
            await old.finish_media()
            candidates[user_id] = await old.join_again()

        await asyncio.gather(*(go_dark(u) for u in dark), *(rejoin_media(u) for u in rejoin))
        await eventually(
            lambda: set(admin.closed("video.gap")) == set(dark), timeout=30, what="the gaps closed"
        )
        await asyncio.gather(*(c.finish() for c in candidates.values()))
        await eventually(
            lambda: (
                set(admin.opened("recording.missing")) == set(dropped)
                and set(admin.opened("recording.failed")) == set(failed)
            ),
            timeout=30,
            what="the dropped and failed recordings are alerted",
        )
        await settled_and_reconciled(http)
        live = await snapshot(http, event, ids)

        emitted = (await http.get("/hms-sim/_sim/events")).json()["events"]
        lost = sum(
            1
            for d in (await http.get("/hms-sim/_sim/webhooks")).json()["deliveries"]
            if d["outcome"] == "dropped"
        )
        replay = emitted * 2
        rng.shuffle(replay)
        headers = {"X-Proctorhub-Webhook-Secret": WEBHOOK_SECRET}
        for envelope in replay:
            answer = await http.post("/webhooks/100ms", json=envelope, headers=headers)
            assert answer.status_code == 200, answer.text
        await eventually(lambda: drained(http), timeout=30, what="the replay handled")
        replayed = await snapshot(http, event, ids)

    assert replayed == live, f"{lost} events were lost on the way"
    assert set(admin.opened("video.gap")) == set(dark)
    alerted = {a["candidate_id"] for a in live["alerts"]}
    assert alerted == set(dropped + failed + dark)
    rows = {r["candidate_id"]: r for r in live["report"]["candidates"]}
    for user_id in rejoin:
        assert rows[user_id]["recordings_expected"] == 2 and rows[user_id]["recordings_arrived"] == 2
    assert rows[dropped[0]]["recordings_missing"] == 1 and rows[failed[0]]["recordings_failed"] == 1


async def test_webhooks_100ms_gave_up_on_are_read_back_from_its_rest_api(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    hub = hub_factory(
        ARCHIVE_DIR=str(tmp_path),
        HMS_SIM_RECORDING_DELAY_S="0.2",
        RECORDING_DEADLINE_S="1",
        RECORDING_RECONCILE_S="1",
    )
    event = "read-back"
    create_event(hub, event, room_size=5, expected_candidates=2)
    async with httpx.AsyncClient(base_url=hub.http, timeout=30) as http:
        for kind in ("peer.join.success", "peer.leave.success", "session.close.success", "stream.recording"):
            await add_fault(http, kind="webhook.lose", event_type=kind, user_id="lost", count=1)
        await add_fault(http, kind="webhook.lose", event_type="session.close.success", count=1)
        admin = await watcher(hub, "admin", "admin", event)
        lost = await sit(hub, event, "lost", http)
        await asyncio.sleep(2.5)  # the sitting itself, not a wait: 100ms counts recordings in whole seconds
        await lost.finish()

        async def timeline() -> dict[str, Any]:
            answer = await http.get(f"/api/v1/events/{event}/candidates/lost/timeline", headers=AUTH)
            return dict(answer.json())

        async def recorded() -> dict[str, Any] | None:
            found = await timeline()
            return found if [r["status"] for r in found["recordings"]] == ["recorded"] else None

        found = await eventually(recorded, timeout=15, what="the lost recording read back as recorded")
        injected = (await http.get("/hms-sim/_sim/log")).json()["injected"]
    assert {i["event_type"] for i in injected} >= {
        "peer.join.success",
        "session.close.success",
        "stream.recording.success",
    }
    assert found["intervals"]["recorded"] and found["intervals"]["in_room"]
    assert not [a for a in admin.alerts if a.data["kind"].startswith("recording.")]
