"""server/ws_protocol.py under a real uvicorn on a real port, against a websockets client.

The synchronous writer must be ready while the socket takes frames at once and not while the
transport's buffer is over its high-water mark, raise ClientDisconnected once the peer has closed (as
the ASGI `send` does), and leave the rest to the ASGI `send`: the client sees every frame, in order,
whichever way each went.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from uvicorn.protocols.utils import ClientDisconnected
from websockets.asyncio.client import connect
from websockets.frames import Frame, Opcode

from server.ws_protocol import NOW_WRITER, FastSendProtocol, frame_head
from tests.polling import eventually
from tests.simulator_support import serve


class BurstApp:
    """On "burst N SIZE", sends N numbered text frames of SIZE bytes: by the synchronous writer when
    it is ready, else by the ASGI `send`. Remembers what a write did after the client left."""

    def __init__(self) -> None:
        self.had_writer = False
        self.written_now = 0
        self.refused = 0
        self.after_disconnect: str | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        writer = scope["extensions"].get(NOW_WRITER)
        self.had_writer = writer is not None
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            event = await receive()
            if event["type"] == "websocket.disconnect":
                try:
                    writer.write(b"late", True)
                    self.after_disconnect = "written"
                except ClientDisconnected:
                    self.after_disconnect = "ClientDisconnected"
                return
            _, count, size = event["text"].split()
            for n in range(int(count)):
                frame = orjson.dumps({"n": n, "pad": "x" * int(size)}).decode()
                if writer is not None and writer.ready():
                    writer.write(frame.encode(), True)
                    self.written_now += 1
                    continue
                self.refused += 1
                await send({"type": "websocket.send", "text": frame})


@pytest.fixture
async def burst() -> AsyncIterator[tuple[BurstApp, str]]:
    app = BurstApp()
    async with serve(app, ws=FastSendProtocol, lifespan="off") as url:
        yield app, url.replace("http://", "ws://") + "/"


@pytest.mark.parametrize("size", [10, 500, 70_000], ids=["7-bit length", "16-bit length", "64-bit length"])
async def test_frames_the_socket_takes_go_at_once_and_all_arrive_in_order(
    burst: tuple[BurstApp, str], size: int
) -> None:
    app, url = burst
    async with connect(url, compression=None, max_size=None) as ws:
        await ws.send(f"burst 50 {size}")
        got = [orjson.loads(await ws.recv()) for _ in range(50)]
    assert app.had_writer
    assert [m["n"] for m in got] == list(range(50)) and all(len(m["pad"]) == size for m in got)
    assert app.written_now == 50 and app.refused == 0


@settings(max_examples=300, deadline=None)
@given(text=st.booleans(), length=st.integers(0, 70_000) | st.sampled_from([125, 126, 65_535, 65_536]))
def test_the_frame_head_is_the_one_websockets_writes(text: bool, length: int) -> None:
    payload = b"x" * length
    opcode = Opcode.TEXT if text else Opcode.BINARY
    assert frame_head(text, length) + payload == Frame(opcode, payload).serialize(mask=False, extensions=[])


async def test_a_full_buffer_is_refused_and_the_asgi_send_carries_the_rest_in_order(
    burst: tuple[BurstApp, str],
) -> None:
    app, url = burst
    count = 300
    async with connect(url, compression=None, max_size=None, max_queue=1) as ws:
        await ws.send(f"burst {count} 65536")
        await eventually(lambda: app.refused > 0, timeout=10)  # the client reads nothing yet
        got = [orjson.loads(await ws.recv())["n"] for _ in range(count)]
    assert got == list(range(count))
    assert app.written_now > 0 and app.written_now + app.refused == count


async def test_after_the_client_left_nothing_is_written(burst: tuple[BurstApp, str]) -> None:
    app, url = burst
    async with connect(url, compression=None) as ws:
        await ws.send("burst 1 10")
        await ws.recv()
    await eventually(lambda: app.after_disconnect is not None, timeout=10)
    assert app.after_disconnect == "ClientDisconnected"  # as the ASGI send would raise


@pytest.fixture
async def deflating_burst() -> AsyncIterator[tuple[BurstApp, str]]:
    app = BurstApp()
    async with serve(app, ws=FastSendProtocol, lifespan="off", ws_per_message_deflate=True) as url:
        yield app, url.replace("http://", "ws://") + "/"


async def test_with_deflate_negotiated_every_frame_takes_the_asgi_send(
    deflating_burst: tuple[BurstApp, str],
) -> None:
    """The writer frames without extensions, so a compressed socket is never ready: uvicorn compresses."""
    app, url = deflating_burst
    async with connect(url, compression="deflate") as ws:
        assert ws.protocol.extensions  # deflate was negotiated
        await ws.send("burst 20 500")
        got = [orjson.loads(await ws.recv())["n"] for _ in range(20)]
    assert got == list(range(20))
    assert app.written_now == 0 and app.refused == 20
