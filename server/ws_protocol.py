"""uvicorn's sans-I/O websockets protocol with a synchronous send for frames that can go at once.

An ASGI `send` is a coroutine: uvicorn's waits for the transport to be writable, walks the handshake
states, then frames the message. A broadcast to 5,000 sockets paid that per socket (four coroutines
with the hub's own writer) for writes that almost never wait. This protocol offers, in the scope's
`extensions` under `NOW_WRITER`, two plain methods: `ready()`, whether the socket takes a frame now,
and `write(frame, text)`. When it is not ready the caller uses the ASGI `send`, which keeps every rule
(flow control, the handshake, a close already sent). `write` frames the message itself (two to ten
bytes of header, RFC 6455): websockets' general framing was a fifth of the hub's own time per socket.
"""

from __future__ import annotations

import struct

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State

NOW_WRITER = "proctorhub.now_writer"
"""The scope extension: the protocol itself, as a `NowWriter`."""


class FastSendProtocol(WebSocketsSansIOProtocol):
    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # absent when the handshake was refused
        if scope is not None:
            scope["extensions"][NOW_WRITER] = self

    def ready(self) -> bool:
        """The socket is open and its buffer below the high-water mark: `write` may go now. False
        leaves the frame to the ASGI `send`, which waits or refuses by uvicorn's own rules; so do an
        extension on the frames (deflate, off in serve.py) and output websockets has not flushed."""
        return (
            self.handshake_complete
            and not self.close_sent
            and not self.disconnected
            and self.initial_response is None
            and self.writable.is_set()
            and not self.conn.extensions
            and not self.conn.writes
        )

    def write(self, frame: bytes, text: bool) -> None:
        """Frame and write one message at once (after `ready`): `text` a UTF-8 text message, else
        binary. A socket the peer has begun to close raises ClientDisconnected, as the ASGI `send`
        would."""
        if self.conn.state is not State.OPEN:
            raise ClientDisconnected()
        self.transport.write(frame_head(text, len(frame)) + frame)


def frame_head(text: bool, length: int) -> bytes:
    """RFC 6455 section 5.2, a server's frame: FIN, text or binary, unmasked, the payload's length."""
    first = 0x81 if text else 0x82
    if length < 126:
        return bytes((first, length))
    if length < 1 << 16:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)
