"""The simulator's REST API keeps the shapes of contract §2 (rooms, active rooms, sessions)."""

from __future__ import annotations

import re

import pytest

from tests.polling import eventually
from tests.simulator_support import Harness, running

HEX24 = re.compile(r"^[0-9a-f]{24}$")


def _types(h: Harness) -> list[str]:
    return [e["type"] for e in h.sim.events]


async def test_create_room_answers_the_room_object() -> None:
    async with running() as h:
        room = await h.create_room("Evt42-abc", description="Room for event 42", region="auto")
        assert HEX24.match(room["id"])
        assert room["name"] == "Evt42-abc"
        assert room["enabled"] is True
        assert room["description"] == "Room for event 42"
        assert room["template_id"] == "proctorhub-template"
        assert room["region"] == "in"  # "auto" is the template's region
        assert room["customer_id"] == h.config.account_id
        assert room["app_id"] == h.config.app_id
        assert room["recording_info"] == {"enabled": False}
        assert room["recording_source_template"] is True
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", room["created_at"])


async def test_create_is_an_upsert_by_case_insensitive_name() -> None:
    async with running() as h:
        first = await h.create_room("exam-A", description="one")
        again = await h.create_room("EXAM-a", description="two", region="eu")
        assert again["id"] == first["id"]
        assert again["name"] == "exam-A"
        assert (again["description"], again["region"]) == ("two", "eu")
        listed = (await h.http.get("/v2/rooms", params={"name": "exam-a"}, headers=h.auth())).json()
        assert [r["id"] for r in listed["data"]] == [first["id"]]
        assert listed["data"][0]["key"] == f"{h.config.account_id}:exam-A"


async def test_a_room_without_a_name_gets_one() -> None:
    async with running() as h:
        answer = await h.http.post("/v2/rooms", headers=h.auth())
        assert answer.status_code == 200
        assert re.match(r"^[0-9a-f-]{36}$", answer.json()["name"])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "bad name!"}, "Invalid body param: name"),
        ({"name": "r", "region": "mars"}, "Error: region not supported"),
        ({"name": "r", "template_id": "nope"}, "Error: template not found"),
        ({"name": "r", "template": "proctorhub-template"}, "Invalid body param: template. Use template_id"),
        (
            {"name": "r", "max_duration_seconds": 60},
            "Invalid body param: max_duration_seconds less than 120 seconds",
        ),
        (
            {"name": "r", "max_duration_seconds": 50000},
            "Invalid body param: max_duration_seconds greater than 43200 seconds",
        ),
        (
            {"name": "r", "recording_info": {"enabled": True, "upload_info": {"type": "s3"}}},
            "Bucket location is missing",
        ),
        (
            {"name": "r", "recording_info": {"upload_info": {"type": "ftp", "location": "b"}}},
            "Invalid upload configuration",
        ),
        ({"name": "r", "webhook": {"url": "ftp://x"}}, "Invalid body param: webhook"),
    ],
)
async def test_create_room_validation(body: dict[str, object], message: str) -> None:
    async with running() as h:
        answer = await h.http.post("/v2/rooms", json=body, headers=h.auth())
        assert answer.status_code == 400
        assert answer.json()["code"] == 400
        assert answer.json()["message"] == message
        assert isinstance(answer.json()["details"], list)
        assert not h.sim.workspace.rooms


async def test_get_update_disable_enable() -> None:
    async with running() as h:
        room = await h.create_room("exam-1")
        got = (await h.http.get(f"/v2/rooms/{room['id']}", headers=h.auth())).json()
        assert got["id"] == room["id"]

        missing = await h.http.get(f"/v2/rooms/{'f' * 24}", headers=h.auth())
        assert missing.status_code == 404
        assert missing.json() == {"code": 404, "message": "room not found", "details": []}

        updated = await h.http.post(
            f"/v2/rooms/{room['id']}",
            json={"description": "new", "webhook": {"url": "http://x/hook", "headers": {"A": "b"}}},
            headers=h.auth(),
        )
        assert updated.json()["description"] == "new"
        assert updated.json()["webhook"] == {"url": "http://x/hook", "headers": {"A": "b"}}

        disabled = await h.http.post(f"/v2/rooms/{room['id']}", json={"enabled": False}, headers=h.auth())
        assert disabled.json()["enabled"] is False
        enabled_list = (await h.http.get("/v2/rooms", headers=h.auth())).json()
        assert enabled_list["data"] == []  # enabled defaults to true
        disabled_list = (await h.http.get("/v2/rooms", params={"enabled": "false"}, headers=h.auth())).json()
        assert [r["id"] for r in disabled_list["data"]] == [room["id"]]

        enabled = await h.http.post(f"/v2/rooms/{room['id']}", json={"enabled": True}, headers=h.auth())
        assert enabled.json()["enabled"] is True
        await h.join(room["id"], "cand-1")


async def test_list_pagination_follows_last_as_start() -> None:
    async with running() as h:
        ids = [(await h.create_room(f"room-{n:02d}"))["id"] for n in range(25)]
        seen: list[str] = []
        start = None
        sizes = []
        while True:
            params = {"limit": "10"} | ({"start": start} if start else {})
            page = (await h.http.get("/v2/rooms", params=params, headers=h.auth())).json()
            assert page["limit"] == 10
            sizes.append(len(page["data"]))
            seen += [r["id"] for r in page["data"]]
            if len(page["data"]) < 10:
                break
            assert page["last"] == page["data"][-1]["id"]
            start = page["last"]
        assert sizes == [10, 10, 5]
        assert seen == ids
        default = (await h.http.get("/v2/rooms", headers=h.auth())).json()
        assert (default["limit"], len(default["data"])) == (10, 10)
        for bad in ("5", "101", "ten"):
            answer = await h.http.get("/v2/rooms", params={"limit": bad}, headers=h.auth())
            assert answer.status_code == 400
            assert answer.json()["message"] == "Invalid query param: limit"


async def test_active_room_and_the_peers_map() -> None:
    async with running() as h:
        room = await h.create_room("exam-1")
        none = await h.http.get(f"/v2/active-rooms/{room['id']}", headers=h.auth())
        assert none.status_code == 404
        a = await h.join(room["id"], "cand-1")
        b = await h.join(room["id"], "cand-2")
        p = await h.join(room["id"], "proc-1", "proctor")
        active = (await h.http.get(f"/v2/active-rooms/{room['id']}", headers=h.auth())).json()
        assert active["id"] == room["id"]
        assert active["session"]["id"] == a["session_id"] == p["session_id"]
        assert sorted(active["session"]["peers"]) == sorted([a["peer_id"], b["peer_id"], p["peer_id"]])

        peers = (await h.http.get(f"/v2/active-rooms/{room['id']}/peers", headers=h.auth())).json()["peers"]
        assert set(peers) == {a["peer_id"], b["peer_id"], p["peer_id"]}
        assert peers[a["peer_id"]]["user_id"] == "cand-1"
        assert set(peers[a["peer_id"]]) == {"id", "name", "user_id", "metadata", "role", "joined_at"}
        by_role = (
            await h.http.get(
                f"/v2/active-rooms/{room['id']}/peers", params={"role": "proctor"}, headers=h.auth()
            )
        ).json()["peers"]
        assert list(by_role) == [p["peer_id"]]
        by_user = (
            await h.http.get(
                f"/v2/active-rooms/{room['id']}/peers", params={"user_id": "cand-2"}, headers=h.auth()
            )
        ).json()["peers"]
        assert list(by_user) == [b["peer_id"]]
        nobody = (
            await h.http.get(
                f"/v2/active-rooms/{room['id']}/peers", params={"user_id": "x"}, headers=h.auth()
            )
        ).json()
        assert nobody == {"peers": {}}

        await h.media(a["peer_id"], "publish", video=True, audio=True)
        one = (
            await h.http.get(f"/v2/active-rooms/{room['id']}/peers/{a['peer_id']}", headers=h.auth())
        ).json()
        assert sorted(t["type"] for t in one["tracks"].values()) == ["audio", "video"]
        track = next(iter(one["tracks"].values()))
        assert set(track) == {"id", "stream_id", "mute", "type", "source", "started_at", "description"}


async def test_remove_peers_kicks_asynchronously_with_the_reason() -> None:
    async with running() as h:
        room = await h.create_room("exam-1")
        a = await h.join(room["id"], "cand-1")
        await h.join(room["id"], "proc-1", "proctor")
        url = f"/v2/active-rooms/{room['id']}/remove-peers"
        answer = await h.http.post(
            url, json={"peer_id": a["peer_id"], "reason": "cheating"}, headers=h.auth()
        )
        assert answer.json() == {"message": "peer remove request submitted"}
        await eventually(lambda: "peer.leave.success" in _types(h))
        [leave] = [e for e in h.sim.events if e["type"] == "peer.leave.success"]
        assert (leave["data"]["peer_id"], leave["data"]["reason"], leave["data"]["message"]) == (
            a["peer_id"],
            "peer kicked",
            "cheating",
        )
        assert (await h.peer(a["peer_id"]))["state"] == "left"

        assert (await h.http.post(url, json={}, headers=h.auth())).status_code == 400
        gone = await h.http.post(url, json={"peer_id": a["peer_id"]}, headers=h.auth())
        assert gone.status_code == 404

        await h.http.post(url, json={"role": "proctor", "reason": "shift over"}, headers=h.auth())
        await eventually(lambda: "session.close.success" in _types(h))


async def test_end_room_with_lock_disables_the_room() -> None:
    async with running() as h:
        room = await h.create_room("exam-1")
        a = await h.join(room["id"], "cand-1")
        url = f"/v2/active-rooms/{room['id']}/end-room"
        answer = await h.http.post(url, json={"reason": "exam over", "lock": True}, headers=h.auth())
        assert answer.json() == {"message": "session is ending"}
        got = (await h.http.get(f"/v2/rooms/{room['id']}", headers=h.auth())).json()
        assert got["enabled"] is False
        await eventually(lambda: "session.close.success" in _types(h))
        assert _types(h)[-3:] == ["room.end.success", "peer.leave.success", "session.close.success"]
        end = next(e for e in h.sim.events if e["type"] == "room.end.success")
        assert (end["data"]["lock_room"], end["data"]["reason"]) == (True, "exam over")
        assert (await h.peer(a["peer_id"]))["leave_reason"] == "peer kicked"
        refused = await h.http.post("/media/join", json={"token": h.app_token(room["id"], "cand-1")})
        assert refused.status_code == 403
        assert (await h.http.post(url, json={}, headers=h.auth())).status_code == 404


async def test_sessions_list_and_get() -> None:
    async with running() as h:
        room = await h.create_room("exam-1")
        a = await h.join(room["id"], "cand-1")
        active = (await h.http.get("/v2/sessions", params={"room_id": room["id"]}, headers=h.auth())).json()
        [session] = active["data"]
        assert (session["id"], session["active"], session["room_id"]) == (a["session_id"], True, room["id"])
        assert "left_at" not in session["peers"][a["peer_id"]]

        await h.media(a["peer_id"], "leave")
        assert (await h.http.get("/v2/sessions", headers=h.auth())).json()[
            "data"
        ] == []  # active=true default
        closed = (await h.http.get("/v2/sessions", params={"active": "false"}, headers=h.auth())).json()[
            "data"
        ]
        assert [s["id"] for s in closed] == [a["session_id"]]
        got = (await h.http.get(f"/v2/sessions/{a['session_id']}", headers=h.auth())).json()
        peer = got["peers"][a["peer_id"]]
        assert got["active"] is False
        assert (peer["user_id"], peer["role"], peer["session_id"]) == ("cand-1", "candidate", a["session_id"])
        assert peer["left_at"] >= peer["joined_at"]

        b = await h.join(room["id"], "cand-1")
        assert b["session_id"] != a["session_id"]  # a new session with the next first join
        assert (await h.http.get("/v2/sessions/nope", headers=h.auth())).status_code == 404


async def test_send_message_and_update_peer() -> None:
    async with running() as h:
        room = await h.create_room("exam-1")
        a = await h.join(room["id"], "cand-1")
        url = f"/v2/active-rooms/{room['id']}"
        sent = await h.http.post(f"{url}/send-message", json={"message": "5 minutes left"}, headers=h.auth())
        assert sent.json() == {"message": "message sent"}
        assert (await h.peer(a["peer_id"]))["messages"][0]["message"] == "5 minutes left"
        changed = await h.http.post(
            f"{url}/peers/{a['peer_id']}", json={"role": "proctor", "metadata": "{}"}, headers=h.auth()
        )
        assert (changed.json()["role"], changed.json()["metadata"]) == ("proctor", "{}")
        assert "role.change.success" in _types(h)
        bad = await h.http.post(f"{url}/peers/{a['peer_id']}", json={"role": "host"}, headers=h.auth())
        assert bad.status_code == 400


async def test_unknown_paths_and_methods_answer_the_error_body() -> None:
    async with running() as h:
        answer = await h.http.get("/v2/nothing", headers=h.auth())
        assert answer.status_code == 404
        assert answer.json() == {"code": 404, "message": "not found", "details": []}
        wrong = await h.http.delete("/v2/rooms", headers=h.auth())
        assert wrong.status_code == 405
        assert wrong.json()["code"] == 405
