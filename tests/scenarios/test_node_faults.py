"""Nodes dying or stopping in the middle of a join storm, on Redis with one shared 100ms simulator.

SIGKILL: the killed node's candidates come back on the other node and find their seats; nobody sits
twice, no room overflows, nobody seated before the kill moves. SIGTERM: the node closes its sockets
with 1012, hands them back to the store at once, stops by itself, and every seat it gave stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tests.allocation_support import AUTH, allocation, seats
from tests.client import HubClient, login, token
from tests.conftest import SECRET, create_event
from tests.polling import eventually
from tests.servers import HubProcess, RedisServer, start_simulator
from tests.webhook_support import WEBHOOK_SECRET, post
from tests.webhook_support import event as webhook

ROOM_SIZE = 10
KEYS = {"HMS_ACCESS_KEY": "simkey", "HMS_SECRET": "s" * 40, "HUB_SECRET": SECRET}


class Node(Protocol):
    @property
    def ws(self) -> str: ...


class Candidate:
    """Logs in on its node; when the socket drops, logs in again on any node that answers.

    A node that stops while a socket is still in its opening handshake ends it without an HTTP answer
    (`InvalidMessage`) or with a refusal (`InvalidStatus`): both are `InvalidHandshake`, and the client
    tries again elsewhere like a browser would. Anything else ends the task: `alive` reports it."""

    def __init__(self, user: str, event: str, nodes: list[Node], first: int) -> None:
        self.user, self.event, self.nodes, self.at = user, event, nodes, first
        self.rooms: list[str] = []
        self.closes: list[int | None] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            node = self.nodes[self.at % len(self.nodes)]
            try:
                client, _ = await login(node.ws, token(SECRET, self.user, event=self.event), timeout=30)
            except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError, AssertionError):
                self.at += 1
                await asyncio.sleep(random.uniform(0.05, 0.3))
                continue
            self.closes.append(await self._follow(client))
            self.at += 1  # a dropped socket comes back through the load balancer, elsewhere

    async def _follow(self, client: HubClient) -> int | None:
        try:
            while True:
                message = await client.recv(timeout=3600)
                if message["type"] == "room.assign":
                    self.rooms.append(message["data"]["room_id"])
                    await client.send("ack", {"id": message["id"]})
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None

    def stop(self) -> None:
        self.task.cancel()


def alive(candidates: list[Candidate]) -> None:
    """A client that gave up reconnecting fails the test at once: it would never come back nor be
    told its room, and a wait for it would only hide why."""
    for c in candidates:
        if c.task.done() and not c.task.cancelled():
            raise AssertionError(f"{c.user} stopped reconnecting: {c.task.exception()!r}")


def all_told(candidates: list[Candidate]) -> bool:
    """Every candidate has been told a room (and every one is still trying)."""
    alive(candidates)
    return all(c.rooms for c in candidates)


@dataclass
class CutNode:
    """A node in its last moment: it takes the TCP connection and closes it before any HTTP answer."""

    port: int

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


async def test_a_handshake_cut_by_a_stopping_node_is_tried_again() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.close()

    server = await asyncio.start_server(cut, "127.0.0.1", 0)
    candidate = Candidate("c0", "e1", [CutNode(server.sockets[0].getsockname()[1])], 0)
    try:
        await eventually(lambda: alive([candidate]) or candidate.at >= 3, timeout=20, what="3 attempts")
    finally:
        candidate.stop()
        server.close()


def two_nodes(
    hub_factory: Any, redis_server: RedisServer, **extra: object
) -> tuple[list[HubProcess], HubProcess]:
    simulator = start_simulator(KEYS)
    common = {"REDIS_URL": redis_server.url, "HMS_API_BASE": f"{simulator.http}/v2", "HUB_RATE_PER_S": 100}
    nodes = [hub_factory(HUB_NODE_ID=f"storm-{n}", **common, **KEYS, **extra) for n in ("a", "b")]
    return nodes, simulator


async def storm(
    out: list[Candidate], make: Callable[[int], Candidate], midway: Callable[[], Awaitable[None]]
) -> None:
    """300 candidates arriving 5 ms apart (into `out`, which the test stops); `midway` at the 151st."""
    for i in range(300):
        out.append(make(i))
        if i == 150:
            await midway()
        await asyncio.sleep(0.005)


def check_seats(alloc: dict[str, Any]) -> dict[str, str]:
    listed = [c for r in alloc["rooms"] for c in r["candidates"]]
    assert len(listed) == len(set(listed)), "a candidate sits in two rooms"
    assert all(len(r["candidates"]) <= ROOM_SIZE for r in alloc["rooms"]), "a room over its size"
    return seats(alloc)


async def test_a_node_killed_in_a_storm_loses_no_seat(hub_factory, redis_server: RedisServer) -> None:
    nodes, simulator = two_nodes(hub_factory, redis_server, HUB_PRESENCE_GRACE_S=5, HUB_NODE_TTL_S=2)
    candidates: list[Candidate] = []
    before: dict[str, str] = {}
    try:
        event = "kill-storm"
        create_event(nodes[0], event, room_size=ROOM_SIZE, expected_candidates=300)

        async def kill() -> None:
            await asyncio.sleep(0.5)
            before.update(check_seats(allocation(nodes[1], event)))
            nodes[0].kill()  # in the middle of the storm, whatever it was doing

        await storm(candidates, lambda i: Candidate(f"c{i}", event, nodes, i % 2), kill)
        live = [nodes[1]]
        for c in candidates:
            c.nodes = live

        def all_seated() -> bool:
            return all_told(candidates) and len(seats(allocation(nodes[1], event))) == 300

        await eventually(all_seated, timeout=60, what="every candidate seated after the kill")
        after = check_seats(allocation(nodes[1], event))
        assert all(after[cid] == room for cid, room in before.items()), "a seat moved"
        for c in candidates:
            assert set(c.rooms) == {after[c.user]}, f"{c.user} was told {c.rooms}, sits in {after[c.user]}"
    finally:
        for c in candidates:
            c.stop()
        simulator.stop()


async def test_sigterm_in_a_storm_drains_and_keeps_every_seat(hub_factory, redis_server: RedisServer) -> None:
    nodes, simulator = two_nodes(hub_factory, redis_server, HUB_PRESENCE_GRACE_S=30, HUB_SHUTDOWN_S=6)
    on_a: list[Candidate] = []
    try:
        event = "term-storm"
        create_event(nodes[0], event, room_size=ROOM_SIZE, expected_candidates=400)
        on_a += [Candidate(f"a{i}", event, nodes[:1], 0) for i in range(200)]
        await eventually(
            lambda: sum(1 for c in on_a if c.rooms) >= 100, timeout=60, what="half the storm seated"
        )
        nodes[0].proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(Exception):  # stops by itself: HUB_SHUTDOWN_S bounds it (the bench times it)
            await asyncio.to_thread(nodes[0].proc.wait, 6 + 20)
        assert nodes[0].proc.poll() is not None, "the node did not stop"
        told = {c.user: c.rooms[0] for c in on_a if c.rooms}
        assert all(c.closes[:1] in ([1012], []) for c in on_a), "a socket closed otherwise than 1012"
        for c in on_a:
            c.nodes = nodes[1:]  # the load balancer sends them to the live node

        def all_online() -> bool:
            alive(on_a)
            answer = httpx.get(f"{nodes[1].http}/api/v1/events/{event}", headers=AUTH, timeout=10).json()
            return int(answer["counts"]["online"]) == 200

        await eventually(all_online, timeout=60, what="every candidate back online on the live node")
        await eventually(lambda: all_told(on_a), timeout=60, what="every candidate told its room")
        after = check_seats(allocation(nodes[1], event))
        assert all(after[user] == room for user, room in told.items()), "a seat given before SIGTERM moved"
        assert all(set(c.rooms) == {after[c.user]} for c in on_a), "a candidate was told two rooms"
    finally:
        for c in on_a:
            c.stop()
        simulator.stop()


def recording_failure(room_id: str, user: str) -> dict[str, Any]:
    """A 100ms `stream.recording.failure` of one candidate's stream: an alert at once."""
    peer = f"peer-{user}"
    return webhook(
        "stream.recording.failure",
        room_id=room_id,
        room_name=None,
        session_id=f"session-{room_id}",
        peer_id=peer,
        stream_id=peer,
        user_id=user,
        recording_id=f"rec-{user}",
        error_message="INTERNAL_ERROR",
        size=0,
        duration=0,
        type="regular",
    )


async def test_sigterm_while_sockets_connect_exits_and_loses_nothing_accepted(
    hub_factory, redis_server: RedisServer
) -> None:
    """SIGTERM in the middle of a storm still arriving, with webhooks accepted just before: the node
    goes by itself, every seat it told stays, and every webhook it answered 200 is handled (by it or,
    after the idle time, by the other node)."""
    nodes, simulator = two_nodes(
        hub_factory,
        redis_server,
        HUB_PRESENCE_GRACE_S=30,
        HUB_SHUTDOWN_S=6,
        HMS_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )
    on_a: list[Candidate] = []
    failed: dict[str, str] = {}
    try:
        event = "term-connecting"
        create_event(nodes[0], event, room_size=ROOM_SIZE, expected_candidates=300)

        async def term() -> None:
            await eventually(
                lambda: sum(1 for c in on_a if c.rooms) >= 20, timeout=60, what="a first few seated"
            )
            failed.update({c.user: c.rooms[0] for c in on_a if c.rooms})
            answers = [post(nodes[0], recording_failure(room, user)) for user, room in failed.items()]
            assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
            nodes[0].proc.send_signal(signal.SIGTERM)  # sockets still arriving
            for c in on_a:
                c.nodes = nodes  # what comes after reaches the live node through the balancer

        await storm(on_a, lambda i: Candidate(f"a{i}", event, nodes[:1], 0), term)
        with contextlib.suppress(Exception):  # the bound is correctness, not speed: the bench times it
            await asyncio.to_thread(nodes[0].proc.wait, 6 + 20)
        assert nodes[0].proc.poll() is not None, "the node did not stop"
        told = {c.user: c.rooms[0] for c in on_a if c.rooms}
        assert all(code in (1012, None) for c in on_a for code in c.closes[:1]), "closed otherwise than 1012"
        for c in on_a:
            c.nodes = nodes[1:]

        await eventually(lambda: all_told(on_a), timeout=60, what="every candidate told its room")
        after = check_seats(allocation(nodes[1], event))
        assert len(after) == 300
        assert all(after[user] == room for user, room in told.items()), "a seat given before SIGTERM moved"

        def alerted() -> set[str]:
            answer = httpx.get(f"{nodes[1].http}/api/v1/events/{event}/alerts", headers=AUTH, timeout=10)
            alerts = answer.json()["alerts"]
            return {a["candidate_id"] for a in alerts if a["kind"] == "recording.failed"}

        # an entry the stopping node still held is taken by the other one after the idle time (30 s)
        await eventually(lambda: alerted() >= set(failed), timeout=90, what="every accepted webhook handled")
    finally:
        for c in on_a:
            c.stop()
        simulator.stop()
