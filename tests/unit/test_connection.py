"""`Connection`'s send queue against a fake ASGI `send` that records frames (a stand-in for the socket),
with and without the synchronous writer that server/ws_protocol.py adds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import orjson
import pytest
from uvicorn.protocols.utils import ClientDisconnected

from server.auth import Session
from server.hubs.connection import Connection, ConnectionState
from server.protocol import Codec, Outbound
from tests.polling import eventually

SESSION = Session(user_id="u1", event_id="e1", role="proctor", exp=2e9, iat=1e9)


class FakeSocket:
    """Records every ASGI message; `websocket.send` waits on `gate` (after recording) while it is shut."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.asgi_sends = 0
        self.gone = False

    async def __call__(self, message: dict[str, Any]) -> None:
        self.asgi_sends += 1
        self.sent.append(message)
        if message["type"] == "websocket.send":
            await self.gate.wait()

    def ready(self) -> bool:
        """The synchronous send (server/ws_protocol.py): not ready while the gate is shut, as with a
        full socket buffer, so the frame takes the ASGI `send` above."""
        return self.gate.is_set()

    def write(self, frame: bytes, text: bool) -> None:
        if self.gone:
            raise ClientDisconnected()
        self.sent.append(
            {"type": "websocket.send", "text": frame.decode()}
            if text
            else {"type": "websocket.send", "bytes": frame}
        )

    def frames(self) -> list[dict[str, Any]]:
        out = []
        for message in self.sent:
            if message["type"] != "websocket.send":
                continue
            if "text" in message:
                out.append(orjson.loads(message["text"]))
            else:
                out.append(msgpack.unpackb(message["bytes"], raw=False))
        return out

    def types(self) -> list[str]:
        return [f["type"] for f in self.frames()]


class Harness:
    def __init__(self, write_now: bool) -> None:
        self.write_now = write_now
        self.socket = FakeSocket()
        self.overflows: list[Connection] = []
        self.connections: list[Connection] = []

    def connect(
        self, codec: Codec = Codec.JSON, *, queue_size: int = 16, send_timeout_s: float = 5.0
    ) -> Connection:
        conn = Connection(
            f"conn-{len(self.connections)}",
            self.socket,
            codec,
            queue_size=queue_size,
            send_timeout_s=send_timeout_s,
            on_overflow=self.overflows.append,
            now_writer=self.socket if self.write_now else None,
        )
        conn.open(SESSION)
        self.connections.append(conn)
        return conn


@pytest.fixture(params=[True, False], ids=["now_writer", "asgi_send_only"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """Every test twice: with the synchronous send uvicorn offers the hub, and without it."""
    harness = Harness(request.param)
    yield harness
    harness.socket.gate.set()
    for conn in harness.connections:
        conn.closed()
    await asyncio.sleep(0)  # let cancelled writer tasks finish inside the test's loop


def msg(name: str, key: str | None = None, **data: Any) -> Outbound:
    return Outbound(name, {"n": name, **data}, coalesce_key=key)


# ---------------------------------------------------------------- order and ids


async def test_messages_go_out_in_order_with_increasing_ids(harness: Harness) -> None:
    conn = harness.connect()
    names = [f"m{i}" for i in range(10)]
    for name in names:
        assert conn.send(msg(name))
    await eventually(lambda: len(harness.socket.sent) == 10, interval=0)
    frames = harness.socket.frames()
    assert [f["type"] for f in frames] == names
    assert [f["id"] for f in frames] == list(range(1, 11))
    assert all(f["re"] is None and isinstance(f["ts"], int) for f in frames)
    assert conn.sent == 10 and conn.queued == 0


async def test_ids_keep_increasing_across_writer_restarts(harness: Harness) -> None:
    conn = harness.connect()
    conn.send(msg("a"))
    await eventually(lambda: len(harness.socket.sent) == 1, interval=0)
    await asyncio.sleep(0)  # the writer has finished; the next send starts a new one
    conn.send(Outbound("pong", {}, re=41))
    await eventually(lambda: len(harness.socket.sent) == 2, interval=0)
    frames = harness.socket.frames()
    assert [(f["type"], f["id"], f["re"]) for f in frames] == [("a", 1, None), ("pong", 2, 41)]


async def test_send_never_blocks_the_caller(harness: Harness) -> None:
    conn = harness.connect()
    harness.socket.gate.clear()
    for i in range(5):
        assert conn.send(msg(f"m{i}"))  # returns at once, though the socket takes nothing more
    # The first went out on the caller's stack and now waits on the socket (in a task); the rest queue.
    assert len(harness.socket.sent) == 1 and conn.queued == 4
    harness.socket.gate.set()
    await eventually(lambda: len(harness.socket.sent) == 5, interval=0)


async def test_each_connection_numbers_its_own_messages(harness: Harness) -> None:
    first, second = harness.connect(), harness.connect()
    shared = msg("broadcast")
    first.send(shared)
    second.send(shared)
    second.send(msg("only-second"))
    await eventually(lambda: len(harness.socket.sent) == 3, interval=0)
    assert sorted((f["type"], f["id"]) for f in harness.socket.frames()) == [
        ("broadcast", 1),
        ("broadcast", 1),
        ("only-second", 2),
    ]


# ---------------------------------------------------------------- the synchronous send


@pytest.fixture
def fast() -> Harness:
    return Harness(write_now=True)


async def test_a_frame_the_socket_takes_is_written_without_the_asgi_send(fast: Harness) -> None:
    conn = fast.connect()
    tasks = len(asyncio.all_tasks())
    assert conn.send(msg("now"))
    assert fast.socket.types() == ["now"] and conn.sent == 1
    assert fast.socket.asgi_sends == 0 and len(asyncio.all_tasks()) == tasks


async def test_a_frame_the_socket_refused_keeps_its_id_and_its_ack_is_awaited_once(fast: Harness) -> None:
    conn = fast.connect()
    conn.send(msg("first"))
    fast.socket.gate.clear()
    pushed = Outbound("room.assign", {"rooms": []}, ack_key="assign-1")
    conn.send(pushed)  # not ready: written by the ASGI send, which waits
    await eventually(lambda: len(fast.socket.sent) == 2, interval=0)
    fast.socket.gate.set()
    await eventually(lambda: conn.sent == 2, interval=0)
    await asyncio.sleep(0)  # the writer task ends
    conn.send(msg("third"))
    frames = fast.socket.frames()
    assert [(f["type"], f["id"]) for f in frames] == [("first", 1), ("room.assign", 2), ("third", 3)]
    assert conn.awaiting_ack == {2: "assign-1"}


async def test_a_socket_gone_under_a_synchronous_send_costs_the_caller_nothing(fast: Harness) -> None:
    conn = fast.connect()
    fast.socket.gone = True
    assert conn.send(msg("lost"))  # no exception for the broadcast that called it
    assert conn.sent == 0 and conn.queued == 0 and fast.socket.sent == []


# ---------------------------------------------------------------- greeting


async def test_live_messages_wait_for_the_greeting_and_what_it_carried_is_not_sent_twice(
    harness: Harness,
) -> None:
    conn = harness.connect()
    conn.hold()
    release = Outbound("backfill.release", {"until": 5})
    conn.send(Outbound("backfill.release", {"until": 5}))  # published while the sync runs
    conn.send(msg("live"))
    conn.send(msg("hello"), first=True)
    synced = [msg("room.assign"), release]
    for message in synced:
        conn.send(message, first=True)
    conn.unhold(synced)
    conn.send(msg("later"))
    await eventually(lambda: len(harness.socket.sent) == 5, interval=0)
    assert harness.socket.types() == ["hello", "room.assign", "backfill.release", "live", "later"]


async def test_held_messages_overflow_like_the_queue(harness: Harness) -> None:
    conn = harness.connect(queue_size=2)
    conn.hold()
    assert conn.send(msg("a")) and conn.send(msg("b"))
    assert not conn.send(msg("c"))
    assert harness.overflows == [conn]


async def test_held_updates_coalesce_so_a_long_greeting_during_a_storm_does_not_overflow(
    harness: Harness,
) -> None:
    conn = harness.connect(queue_size=3)
    conn.hold()
    for v in range(10):
        assert conn.send(msg("candidate.status", "status:c1", c="c1", v=v))
        assert conn.send(msg("candidate.status", "status:c2", c="c2", v=v))
    assert conn.send(msg("other"))
    assert harness.overflows == []
    conn.unhold([])
    await eventually(lambda: len(harness.socket.sent) == 3, interval=0)
    sent = [(f["type"], f["data"].get("c"), f["data"].get("v")) for f in harness.socket.frames()]
    assert sent == [("candidate.status", "c1", 9), ("candidate.status", "c2", 9), ("other", None, None)]


# ---------------------------------------------------------------- coalescing


async def test_coalesced_messages_keep_the_first_place_and_the_latest_content(harness: Harness) -> None:
    conn = harness.connect()
    harness.socket.gate.clear()
    conn.send(msg("blocker"))
    await eventually(lambda: len(harness.socket.sent) == 1, interval=0)  # the writer now waits inside send

    assert conn.send(msg("candidate.status", "status:c1", v=1))
    assert conn.send(msg("other"))
    assert conn.send(msg("candidate.status", "status:c2", v=1))
    assert conn.send(msg("candidate.status", "status:c1", v=2))
    assert conn.send(msg("candidate.status", "status:c1", v=3))
    assert conn.queued == 3

    harness.socket.gate.set()
    await eventually(lambda: len(harness.socket.sent) == 4, interval=0)
    await asyncio.sleep(0)
    frames = harness.socket.frames()
    assert [(f["type"], f["data"].get("v")) for f in frames] == [
        ("blocker", None),
        ("candidate.status", 3),
        ("other", None),
        ("candidate.status", 1),
    ]
    assert [f["id"] for f in frames] == [1, 2, 3, 4]


async def test_a_message_already_being_written_is_not_replaced(harness: Harness) -> None:
    conn = harness.connect()
    harness.socket.gate.clear()
    conn.send(msg("candidate.status", "status:c1", v=1))
    await eventually(lambda: len(harness.socket.sent) == 1, interval=0)
    conn.send(msg("candidate.status", "status:c1", v=2))
    assert conn.queued == 1
    harness.socket.gate.set()
    await eventually(lambda: len(harness.socket.sent) == 2, interval=0)
    assert [f["data"]["v"] for f in harness.socket.frames()] == [1, 2]


async def test_coalescing_a_full_queue_is_not_an_overflow(harness: Harness) -> None:
    conn = harness.connect(queue_size=4)
    harness.socket.gate.clear()
    conn.send(msg("blocker"))
    await eventually(lambda: len(harness.socket.sent) == 1, interval=0)
    for i in range(4):
        assert conn.send(msg("candidate.status", f"status:c{i}", v=0))
    assert conn.send(msg("candidate.status", "status:c0", v=1))
    assert harness.overflows == []
    harness.socket.gate.set()
    await eventually(lambda: len(harness.socket.sent) == 5, interval=0)
    assert [f["data"]["v"] for f in harness.socket.frames()[1:]] == [1, 0, 0, 0]


# ---------------------------------------------------------------- overflow and stuck sends


async def test_overflow_calls_on_overflow_and_send_returns_false(harness: Harness) -> None:
    conn = harness.connect(queue_size=4)
    harness.socket.gate.clear()
    conn.send(msg("blocker"))
    await eventually(lambda: len(harness.socket.sent) == 1, interval=0)
    assert all(conn.send(msg(f"m{i}")) for i in range(4))
    assert harness.overflows == []

    assert conn.send(msg("one-too-many")) is False
    assert harness.overflows == [conn]
    assert conn.queued == 4

    harness.socket.gate.set()
    await eventually(lambda: len(harness.socket.sent) == 5, interval=0)
    assert "one-too-many" not in harness.socket.types()


async def test_stuck_send_past_the_timeout_triggers_on_overflow(harness: Harness) -> None:
    conn = harness.connect(send_timeout_s=0.05)
    harness.socket.gate.clear()
    conn.send(msg("stuck"))
    conn.send(msg("behind"))
    assert not conn.stuck(time.monotonic())  # the hub's watchdog asks; not yet past the timeout
    await asyncio.sleep(0.1)
    assert conn.stuck(time.monotonic())
    assert harness.overflows == [conn] and harness.socket.types() == ["stuck"]


async def test_a_socket_with_nothing_in_flight_is_never_stuck(harness: Harness) -> None:
    conn = harness.connect(send_timeout_s=0.05)
    conn.send(msg("written"))
    await eventually(lambda: harness.socket.types() == ["written"], interval=0)
    assert not conn.stuck(time.monotonic() + 60) and harness.overflows == []


async def test_a_slow_send_within_the_timeout_is_fine(harness: Harness) -> None:
    conn = harness.connect(send_timeout_s=0.2)
    harness.socket.gate.clear()
    conn.send(msg("slow"))
    conn.send(msg("next"))
    await asyncio.sleep(0.02)
    harness.socket.gate.set()
    await eventually(lambda: len(harness.socket.sent) == 2, interval=0)
    assert harness.overflows == []


# ---------------------------------------------------------------- closing


async def test_close_sends_the_code_drops_the_queue_and_refuses_later_sends(harness: Harness) -> None:
    conn = harness.connect()
    harness.socket.gate.clear()
    conn.send(msg("blocker"))
    await eventually(lambda: len(harness.socket.sent) == 1, interval=0)
    conn.send(msg("dropped-1"))
    conn.send(msg("candidate.status", "status:c1"))

    await conn.close(1013, "slow consumer")
    assert conn.state is ConnectionState.CLOSING
    assert conn.queued == 0
    assert harness.socket.sent[-1] == {"type": "websocket.close", "code": 1013, "reason": "slow consumer"}
    assert conn.send(msg("after-close")) is False
    assert conn.send(msg("candidate.status", "status:c1")) is False

    harness.socket.gate.set()
    await asyncio.sleep(0.01)
    assert harness.socket.types() == ["blocker"]
    assert [m["type"] for m in harness.socket.sent] == ["websocket.send", "websocket.close"]
    assert harness.overflows == []


async def test_close_is_sent_once_and_the_reason_is_truncated(harness: Harness) -> None:
    conn = harness.connect()
    await conn.close(4401, "x" * 500)
    await conn.close(1000)
    closes = [m for m in harness.socket.sent if m["type"] == "websocket.close"]
    assert closes == [{"type": "websocket.close", "code": 4401, "reason": "x" * 120}]


async def test_closed_refuses_sends(harness: Harness) -> None:
    conn = harness.connect()
    conn.closed()
    assert conn.state is ConnectionState.CLOSED
    assert conn.send(msg("late")) is False
    await asyncio.sleep(0)
    assert harness.socket.sent == []


# ---------------------------------------------------------------- state and codec


async def test_open_only_once(harness: Harness) -> None:
    conn = Connection(
        "c", harness.socket, Codec.JSON, queue_size=4, send_timeout_s=1, on_overflow=harness.overflows.append
    )
    with pytest.raises(RuntimeError, match="authenticated"):
        _ = conn.user_key
    conn.open(SESSION)
    assert conn.user_key == ("e1", "u1")
    with pytest.raises(RuntimeError, match="Expected state connecting, but got open"):
        conn.open(SESSION)


async def test_msgpack_codec_produces_bytes_frames(harness: Harness) -> None:
    conn = harness.connect(Codec.MSGPACK)
    conn.send(Outbound("room.assign", {"room_id": "r1", "token_exp": 123}, re=5))
    conn.send(msg("second"))
    await eventually(lambda: len(harness.socket.sent) == 2, interval=0)
    assert all(set(m) == {"type", "bytes"} and isinstance(m["bytes"], bytes) for m in harness.socket.sent)
    first, second = harness.socket.frames()
    assert {k: first[k] for k in ("type", "id", "re", "data")} == {
        "type": "room.assign",
        "id": 1,
        "re": 5,
        "data": {"room_id": "r1", "token_exp": 123},
    }
    assert second["id"] == 2


async def test_json_codec_produces_text_frames(harness: Harness) -> None:
    conn = harness.connect(Codec.JSON)
    conn.send(msg("a"))
    await eventually(lambda: len(harness.socket.sent) == 1, interval=0)
    assert set(harness.socket.sent[0]) == {"type", "text"}
    assert isinstance(harness.socket.sent[0]["text"], str)
