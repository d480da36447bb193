"""uvicorn's sans-I/O websockets protocol with a synchronous send for frames that can go at once.

An ASGI `send` is a coroutine: uvicorn's waits for the transport to be writable, walks the handshake
states, then frames the message. A broadcast to 5,000 sockets paid that per socket (four coroutines
with the hub's own writer) for writes that almost never wait. This protocol offers, in the scope's
`extensions` under `NOW_WRITER`, two plain methods: `ready()`, whether the socket takes a frame now,
and `write(frame)`. When it is not ready the caller uses the ASGI `send`, which keeps every rule
(flow control, the handshake, a close already sent). Framing stays websockets' own.
"""

from __future__ import annotations

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.http11 import Request

NOW_WRITER = "proctorhub.now_writer"
"""The scope extension: the protocol itself, as a `NowWriter`."""


class FastSendProtocol(WebSocketsSansIOProtocol):
    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # absent when the handshake was refused
        if scope is not None:
            scope["extensions"][NOW_WRITER] = self  # type: ignore[index]

    def ready(self) -> bool:
        """The socket is open and its buffer below the high-water mark: `write` may go now. False
        leaves the frame to the ASGI `send`, which waits or refuses by uvicorn's own rules."""
        return (
            self.handshake_complete
            and not self.close_sent
            and not self.disconnected
            and self.initial_response is None
            and self.writable.is_set()
        )

    def write(self, frame: str | bytes) -> None:
        """Frame and write one message at once (after `ready`). A socket the peer has begun to close
        raises ClientDisconnected, as the ASGI `send` would."""
        try:
            if isinstance(frame, str):
                self.conn.send_text(frame.encode())
            else:
                self.conn.send_binary(frame)
        except InvalidState:
            raise ClientDisconnected() from None
        self.transport.write(b"".join(self.conn.data_to_send()))
