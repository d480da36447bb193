"""Fault injection on REST, the /_sim control API and its log, and the simulator on a real port."""

from __future__ import annotations

import time

import httpx
import pytest

from server.hms.simulator import Simulator, SimulatorConfig
from server.hms.tokens import mint_app_token, mint_management_token
from tests.polling import eventually
from tests.simulator_support import ACCESS_KEY, SECRET, Receiver, receiving, running, serve


async def test_rest_429_and_500_for_the_next_n_calls_on_a_path() -> None:
    async with running() as h:
        room = await h.create_room("exam-1")
        h.sim.add_fault("rest.429", path_prefix="/v2/rooms", count=2)
        h.sim.add_fault("rest.500", path_prefix="/v2/sessions", count=1)
        statuses = [(await h.http.get("/v2/rooms", headers=h.auth())).status_code for _ in range(3)]
        assert statuses == [429, 429, 200]
        limited = h.sim.injected[0]
        assert (limited.kind, limited.path) == ("rest.429", "/v2/rooms")
        failed = await h.http.get("/v2/sessions", headers=h.auth())
        assert failed.status_code == 500
        assert failed.json() == {
            "code": 500,
            "message": "Internal server error",
            "details": ["injected fault"],
        }
        assert (await h.http.get("/v2/sessions", headers=h.auth())).status_code == 200
        assert (await h.http.get(f"/v2/rooms/{room['id']}", headers=h.auth())).status_code == 200
        assert [i.kind for i in h.sim.injected] == ["rest.429", "rest.429", "rest.500"]
        assert h.sim.faults.rules == []  # used up


async def test_rest_faults_scoped_to_a_room_and_by_probability() -> None:
    async with running(seed=3) as h:
        a = await h.create_room("exam-a")
        b = await h.create_room("exam-b")
        h.sim.add_fault("rest.500", room_id=a["id"], probability=1.0)
        assert (await h.http.get(f"/v2/rooms/{a['id']}", headers=h.auth())).status_code == 500
        assert (await h.http.get(f"/v2/rooms/{b['id']}", headers=h.auth())).status_code == 200
        h.sim.clear_faults()
        h.sim.add_fault("rest.429", probability=0.5)
        statuses = [(await h.http.get("/v2/rooms", headers=h.auth())).status_code for _ in range(40)]
        assert 5 < statuses.count(429) < 35
        assert statuses.count(429) == sum(i.kind == "rest.429" for i in h.sim.injected)


async def test_the_control_api_adds_lists_and_removes_faults() -> None:
    async with running() as h:
        bad = await h.http.post("/_sim/faults", json={"kind": "meteor"})
        assert bad.status_code == 400
        assert (
            await h.http.post("/_sim/faults", json={"kind": "webhook.delay"})
        ).status_code == 400  # no seconds
        assert (await h.http.post("/_sim/faults", json={"kind": "rest.500", "count": 0})).status_code == 400
        assert (
            await h.http.post("/_sim/faults", json={"kind": "rest.500", "color": "red"})
        ).status_code == 400
        rule = (
            await h.http.post("/_sim/faults", json={"kind": "rest.500", "count": 1, "path_prefix": "/v2"})
        ).json()
        other = (await h.http.post("/_sim/faults", json={"kind": "recording.drop", "user_id": "u1"})).json()
        listed = (await h.http.get("/_sim/faults")).json()["faults"]
        assert [r["id"] for r in listed] == [rule["id"], other["id"]]
        assert (await h.http.delete(f"/_sim/faults/{other['id']}")).status_code == 200
        assert (await h.http.delete(f"/_sim/faults/{other['id']}")).status_code == 404

        assert (await h.http.get("/v2/rooms", headers=h.auth())).status_code == 500
        [entry] = (await h.http.get("/_sim/log")).json()["injected"]
        assert (entry["kind"], entry["rule_id"], entry["path"], entry["detail"]) == (
            "rest.500",
            rule["id"],
            "/v2/rooms",
            "GET",
        )
        assert entry["time"].endswith("Z") and entry["at"] <= time.time()
        await h.http.post("/_sim/faults", json={"kind": "rest.429"})
        assert (await h.http.delete("/_sim/faults")).json() == {"faults": []}
        assert (await h.http.get("/v2/rooms", headers=h.auth())).status_code == 200

        config = (await h.http.get("/_sim/config")).json()
        assert config["access_key"] == ACCESS_KEY
        assert SECRET not in str(config)
        assert "recording.drop" in config["fault_kinds"]


async def test_on_a_real_port_with_a_rest_timeout() -> None:
    """The simulator under uvicorn (its lifespan starts and stops it), a real receiver, a client timeout."""
    receiver = Receiver()
    async with receiving(receiver) as hook:
        sim = Simulator(SimulatorConfig(access_key=ACCESS_KEY, secret=SECRET, webhook_url=hook))
        async with serve(sim.asgi_app) as base, httpx.AsyncClient(base_url=base, timeout=5) as http:
            token, _ = mint_management_token(access_key=ACCESS_KEY, secret=SECRET, ttl_s=600, now=time.time())
            auth = {"Authorization": f"Bearer {token}"}
            room = (await http.post("/v2/rooms", json={"name": "exam-1"}, headers=auth)).json()
            app_token = mint_app_token(
                access_key=ACCESS_KEY,
                secret=SECRET,
                room_id=room["id"],
                user_id="cand-1",
                role="candidate",
                ttl_s=600,
                now=time.time(),
            ).token
            joined = (await http.post("/media/join", json={"token": app_token})).json()
            await eventually(lambda: len(receiver.events()) >= 2, what="2 webhooks")
            assert receiver.events("peer.join.success")[0]["data"]["peer_id"] == joined["peer_id"]

            await http.post("/_sim/faults", json={"kind": "rest.timeout", "seconds": 0.6, "count": 1})
            started = time.monotonic()
            with pytest.raises(httpx.ReadTimeout):
                await http.get(f"/v2/active-rooms/{room['id']}/peers", headers=auth, timeout=0.2)
            assert time.monotonic() - started < 0.5
            peers = await http.get(f"/v2/active-rooms/{room['id']}/peers", headers=auth, timeout=0.2)
            assert list(peers.json()["peers"]) == [joined["peer_id"]]
            log = (await http.get("/_sim/log")).json()["injected"]
            assert [(e["kind"], e["path"]) for e in log] == [
                ("rest.timeout", f"/v2/active-rooms/{room['id']}/peers")
            ]
            await http.post(f"/media/peers/{joined['peer_id']}/leave")
            await eventually(lambda: len(receiver.events()) >= 4, what="4 webhooks")
        assert receiver.types()[-2:] == ["peer.leave.success", "session.close.success"]
        await eventually(lambda: not sim.started)  # the lifespan stopped it
