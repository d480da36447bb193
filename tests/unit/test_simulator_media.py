"""The media plane: sessions open and close with peers; network loss, the reconnect window (§1.5)."""

from __future__ import annotations

import asyncio
import time

from tests.polling import eventually
from tests.simulator_support import Harness, running


def _events(h: Harness, event_type: str) -> list[dict]:  # type: ignore[type-arg]
    return [e for e in h.sim.events if e["type"] == event_type]


async def test_first_join_opens_and_last_leave_closes_the_session() -> None:
    async with running() as h:
        room = await h.create_room("exam-1")
        a = await h.join(room["id"], "cand-1")
        b = await h.join(room["id"], "cand-2")
        assert a["session_id"] == b["session_id"]
        assert [e["type"] for e in h.sim.events] == [
            "session.open.success",
            "peer.join.success",
            "peer.join.success",
        ]
        opened = _events(h, "session.open.success")[0]["data"]
        assert set(opened) == {"room_id", "room_name", "session_id", "template_id", "session_started_at"}
        joined = _events(h, "peer.join.success")[0]["data"]
        assert (
            joined["peer_id"],
            joined["user_id"],
            joined["user_name"],
            joined["role"],
            joined["type"],
        ) == (
            a["peer_id"],
            "cand-1",
            "Cand-1",
            "candidate",
            "regular",
        )
        assert joined["room_name"] == "exam-1"

        assert (await h.media(a["peer_id"], "leave")).status_code == 200
        assert not _events(h, "session.close.success")
        await h.media(b["peer_id"], "leave")
        [leave_a, leave_b] = _events(h, "peer.leave.success")
        assert leave_a["data"]["reason"] == "client request"
        assert leave_b["data"]["peer_id"] == b["peer_id"]
        assert isinstance(leave_a["data"]["duration"], int)
        [closed] = _events(h, "session.close.success")
        assert closed["data"]["session_id"] == a["session_id"]
        assert isinstance(closed["data"]["session_duration"], int)
        assert h.sim.events[-1]["type"] == "session.close.success"


async def test_leaving_twice_is_a_leave_failure() -> None:
    async with running() as h:
        room = await h.create_room("exam-1")
        a = await h.join(room["id"], "cand-1")
        await h.media(a["peer_id"], "leave")
        again = await h.media(a["peer_id"], "leave")
        assert again.status_code == 409
        assert again.json()["message"] == "peer not joined"
        [failure] = _events(h, "peer.leave.failure")
        assert failure["data"]["error_message"] == "peer not joined"
        assert (await h.http.post("/media/peers/nobody/leave")).status_code == 404


async def test_publish_sets_tracks() -> None:
    async with running() as h:
        room = await h.create_room("exam-1")
        a = await h.join(room["id"], "cand-1")
        peer = (await h.media(a["peer_id"], "publish", video=True, audio=True)).json()
        assert sorted(t["type"] for t in peer["tracks"].values()) == ["audio", "video"]
        assert peer["recording"] is True
        peer = (await h.media(a["peer_id"], "publish", video=False, audio=True)).json()
        assert [t["type"] for t in peer["tracks"].values()] == ["audio"]


async def test_reconnect_with_a_fresh_token_keeps_the_peer() -> None:
    async with running(reconnect_window_s=0.3) as h:
        room = await h.create_room("exam-1")
        a = await h.join(room["id"], "cand-1", ttl_s=60)
        lost = await h.media(a["peer_id"], "network-loss")
        assert lost.json()["state"] == "disconnected"
        fresh = h.app_token(room["id"], "cand-1", ttl_s=3600)
        back = await h.media(a["peer_id"], "reconnect", token=fresh)
        assert back.status_code == 200, back.text
        assert back.json()["id"] == a["peer_id"]
        assert back.json()["state"] == "joined"
        assert back.json()["token_exp"] > time.time() + 3000
        await asyncio.sleep(0.5)  # past the window: nothing happens, 100ms sends nothing on a resume
        assert (await h.peer(a["peer_id"]))["state"] == "joined"
        assert not _events(h, "peer.leave.success")


async def test_reconnect_with_an_expired_token_fails_and_the_peer_leaves_after_the_window() -> None:
    async with running(reconnect_window_s=0.4) as h:
        room = await h.create_room("exam-1")
        expired = h.app_token(room["id"], "cand-1", now=time.time() - 7200, ttl_s=600)
        a = await h.join(room["id"], "cand-1")
        lost_at = time.monotonic()
        await h.media(a["peer_id"], "network-loss")
        refused = await h.media(a["peer_id"], "reconnect", token=expired)
        assert refused.status_code == 401
        assert refused.json()["message"] == "token is expired"
        assert (await h.peer(a["peer_id"]))["state"] == "disconnected"
        await eventually(lambda: bool(_events(h, "peer.leave.success")), timeout=3)
        assert time.monotonic() - lost_at >= 0.4
        [leave] = _events(h, "peer.leave.success")
        assert (leave["data"]["peer_id"], leave["data"]["reason"]) == (a["peer_id"], "websocket closed")
        assert _events(h, "session.close.success")
        late = await h.media(a["peer_id"], "reconnect", token=h.app_token(room["id"], "cand-1"))
        assert late.status_code == 410
        # the client's way back: a new join, a new peer_id, the same user_id
        again = await h.join(room["id"], "cand-1")
        assert again["peer_id"] != a["peer_id"]


async def test_reconnect_checks_the_token_belongs_to_the_peer() -> None:
    async with running() as h:
        room = await h.create_room("exam-1")
        a = await h.join(room["id"], "cand-1")
        await h.media(a["peer_id"], "network-loss", reason="ice connection state closed")
        other = await h.media(a["peer_id"], "reconnect", token=h.app_token(room["id"], "cand-2"))
        assert other.status_code == 403
        missing = await h.media(a["peer_id"], "reconnect")
        assert missing.status_code == 400
        await eventually(lambda: bool(_events(h, "peer.leave.success")), timeout=3)
        assert _events(h, "peer.leave.success")[0]["data"]["reason"] == "ice connection state closed"


async def test_network_kick_fault_drops_the_peer_at_once() -> None:
    async with running(reconnect_window_s=30) as h:
        room = await h.create_room("exam-1")
        a = await h.join(room["id"], "cand-1")
        b = await h.join(room["id"], "cand-2")
        h.sim.add_fault("network.kick", user_id="cand-1")
        await h.media(a["peer_id"], "network-loss")
        await h.media(b["peer_id"], "network-loss")
        assert (await h.peer(a["peer_id"]))["state"] == "left"
        assert (await h.peer(b["peer_id"]))["state"] == "disconnected"  # not matched by the rule
        [kick] = h.sim.injected
        assert (kick.kind, kick.peer_id, kick.user_id, kick.room_id) == (
            "network.kick",
            a["peer_id"],
            "cand-1",
            room["id"],
        )
        assert _events(h, "peer.leave.success")[0]["data"]["reason"] == "websocket closed"


async def test_a_joined_peer_sees_the_others_in_its_session_and_their_live_tracks() -> None:
    async with running() as h:
        room = await h.create_room("exam-1")
        proctor = await h.join(room["id"], "proc-1", "proctor")
        cand = await h.join(room["id"], "cand-1")
        await h.media(cand["peer_id"], "publish", video=True, audio=False)

        async def seen() -> dict[str, list[str]]:
            answer = await h.http.get(f"/media/peers/{proctor['peer_id']}/remote")
            assert answer.status_code == 200, answer.text
            return {p["user_id"]: [t["type"] for t in p["tracks"].values()] for p in answer.json()["peers"]}

        assert await seen() == {"cand-1": ["video"]}
        await h.media(cand["peer_id"], "publish", video=False, audio=False)  # the camera's track ended
        assert await seen() == {"cand-1": []}
        await h.media(cand["peer_id"], "leave")
        assert await seen() == {}
        await h.media(proctor["peer_id"], "leave")
        gone = await h.http.get(f"/media/peers/{proctor['peer_id']}/remote")
        assert gone.status_code == 409
