"""Issue 12, "trust no single witness", on a real hub with its 100ms simulator: a page that keeps
claiming video after 100ms saw its peer leave gets its video gap, whether the leave came by webhook
or was read back from the REST API by the reconciler."""

from __future__ import annotations

import time

import httpx

from tests.conftest import HubFactory, create_event
from tests.polling import eventually
from tests.sitting import add_fault, sit, watcher

THRESHOLD = 1.0
RECONCILE_S = 1.0


async def test_a_page_claiming_video_after_100ms_saw_its_peer_leave_gets_a_gap(
    hub_factory: HubFactory,
) -> None:
    hub = hub_factory(RECORDING_GAP_THRESHOLD_S=str(THRESHOLD))
    event = "wit-leave"
    create_event(hub, event, room_size=5, expected_candidates=5)
    async with httpx.AsyncClient(base_url=hub.http, timeout=30) as media:
        proctor = await watcher(hub, "p1", "proctor", event)
        candidate = await sit(hub, event, "c1", media)
        await eventually(lambda: proctor.rooms, what="the proctor watches the room")
        # The peer leaves 100ms (the simulator sends peer.leave.success); the page goes on saying video.
        left = await media.post(f"/hms-sim/media/peers/{candidate.peer_id}/leave")
        left.raise_for_status()
        left_at = time.time()
        await candidate.report(joined=True, video=True)
        opened = await eventually(
            lambda: proctor.opened("video.gap").get("c1"),
            timeout=THRESHOLD + 2,
            what="a video gap for the page that left 100ms",
        )
        assert opened.data["detail"]["cause"] == "peer_left_100ms"
        assert abs(opened.data["started_at"] / 1000 - left_at) < 1
        # A new join of the same user ends it.
        await candidate.join_again()
        await eventually(
            lambda: proctor.closed("video.gap").get("c1"), timeout=THRESHOLD + 5, what="the gap closed"
        )
        await proctor.stop()


async def test_a_leave_whose_webhook_was_lost_is_read_back_by_the_reconciler(
    hub_factory: HubFactory,
) -> None:
    hub = hub_factory(RECORDING_GAP_THRESHOLD_S=str(THRESHOLD), RECORDING_RECONCILE_S=str(RECONCILE_S))
    event = "wit-lost"
    create_event(hub, event, room_size=5, expected_candidates=5)
    async with httpx.AsyncClient(base_url=hub.http, timeout=30) as media:
        proctor = await watcher(hub, "p1", "proctor", event)
        stays = await sit(hub, event, "c1", media)
        leaves = await sit(hub, event, "c2", media)
        assert stays.room_id == leaves.room_id  # c1 keeps the session open: no session.close either
        await add_fault(media, kind="webhook.lose", user_id="c2", event_type="peer.leave.success")
        left = await media.post(f"/hms-sim/media/peers/{leaves.peer_id}/leave")
        left.raise_for_status()
        await leaves.report(joined=True, video=True)
        opened = await eventually(
            lambda: proctor.opened("video.gap").get("c2"),
            timeout=RECONCILE_S * 2 + THRESHOLD + 2,
            what="a video gap from the reconciled leave",
        )
        assert opened.data["detail"]["cause"] == "peer_left_100ms"
        assert "c1" not in proctor.opened("video.gap")
        await proctor.stop()
