"""One simulated user's WebSocket to the hub: lean, callback-driven, JSON or msgpack.

An `asyncio.Protocol` around the `websockets` sans-I/O `ClientProtocol` (the benches' LeanClient in
benches/held_sockets.py is one too): no compression, no task per socket, pings answered by the
protocol. Against the `websockets` asyncio client (`python -m load_tests.benches.client_bench`, 2,000
sockets to a hub on this machine) it takes 0.56 s of CPU to connect and authenticate them against
0.84 s, at about the same RSS per socket (9 KiB).

The owner gets `on_open()` once the HTTP upgrade is done, `on_message(message, now)` for every
decoded frame (`now` = when its bytes arrived, before decoding) and `on_close(code)` once.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any, Protocol

import msgpack
import orjson
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

SUBPROTOCOLS = {"json": Subprotocol("proctorhub.v1.json"), "msgpack": Subprotocol("proctorhub.v1.msgpack")}
ABNORMAL = 1006


class Owner(Protocol):
    def on_open(self, sock: Socket) -> None: ...
    def on_message(self, message: dict[str, Any], now: float) -> None: ...
    def on_close(self, code: int) -> None: ...


class Socket(asyncio.Protocol):
    __slots__ = ("_fragments", "_next_id", "closed", "codec", "owner", "transport", "ws")

    def __init__(self, url: str, owner: Owner, codec: str) -> None:
        self.ws = ClientProtocol(parse_uri(url), subprotocols=[SUBPROTOCOLS[codec]], max_size=1 << 22)
        self.owner = owner
        self.codec = codec
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._fragments: list[bytes] = []
        self._next_id = 0

    # ---------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.ws.send_request(self.ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Response):
                if self.ws.state is State.OPEN:
                    self.owner.on_open(self)
                else:
                    self.abort()
            elif isinstance(event, Frame):
                self._frame(event, now)
        self._flush()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        rcvd = self.ws.close_rcvd
        self.owner.on_close(rcvd.code if rcvd is not None else ABNORMAL)

    # ---------------------------------------------------------------- frames

    def _flush(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        for chunk in self.ws.data_to_send():
            if chunk:
                transport.write(chunk)
            elif transport.can_write_eof():
                transport.write_eof()

    def _frame(self, frame: Frame, now: float) -> None:
        if frame.opcode not in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
            if frame.opcode is Opcode.PING:  # the protocol has queued the pong already
                self.ping_seen()
            return
        if not frame.fin:
            self._fragments.append(bytes(frame.data))
            return
        payload = frame.data
        if self._fragments:
            payload = b"".join([*self._fragments, bytes(frame.data)])
            self._fragments = []
        try:
            if self.codec == "json":
                message = orjson.loads(payload)
            else:
                message = msgpack.unpackb(payload, raw=False, strict_map_key=False)
        except (ValueError, msgpack.UnpackException):
            return
        if isinstance(message, dict):
            self.owner.on_message(message, now)

    def ping_seen(self) -> None:
        """A server ping arrived (answered already); subclasses may count it."""

    # ---------------------------------------------------------------- sending

    @property
    def is_open(self) -> bool:
        return self.ws.state is State.OPEN and self.transport is not None and not self.transport.is_closing()

    def send(self, kind: str, data: dict[str, Any]) -> int:
        """Send one message; its `id` (0 if the socket is not open)."""
        if not self.is_open:
            return 0
        self._next_id += 1
        message = {"type": kind, "id": self._next_id, "data": data}
        if self.codec == "json":
            self.ws.send_text(orjson.dumps(message))
        else:
            self.ws.send_binary(msgpack.packb(message, use_bin_type=True))
        self._flush()
        return self._next_id

    def close(self, code: int = 1000) -> None:
        if self.ws.state is State.OPEN:
            self.ws.send_close(code)
            self._flush()
            loop = asyncio.get_running_loop()
            loop.call_later(5.0, self.abort)  # the server should finish the close long before
        else:
            self.abort()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame: what a lost network looks like."""
        if self.transport is not None:
            self.transport.abort()


def tls_context(url: str) -> ssl.SSLContext | None:
    return ssl.create_default_context() if url.startswith("wss://") else None


async def connect(url: str, owner: Owner, codec: str, timeout: float) -> Socket:
    """Open the TCP (and TLS) connection; the upgrade then completes in the background (on_open)."""
    parsed = parse_uri(url)
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        _, sock = await loop.create_connection(
            lambda: Socket(url, owner, codec),
            parsed.host,
            parsed.port,
            ssl=tls_context(url),
        )
    return sock
