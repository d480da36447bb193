"""One client socket: its state, its session, and its bounded send queue.

Sends never block the caller. A message for a socket with nothing queued and a
buffer below its high-water mark is written at once on the caller's stack, by
the writer uvicorn's protocol offers (server/ws_protocol.py): no coroutine, no
task. Otherwise it goes into the connection's queue and a writer drains it
through the ASGI send, run at once on the caller's stack and carried on by a
task only when a send has to wait (eager.py); idle sockets hold no task. Status updates carry a
coalesce key and replace an older queued update with the same key. A queue that
overflows, or a send stuck past the timeout (the hub's watchdog looks at
`send_since`), closes the socket with 1013 so the client reconnects and gets its
whole state again; nothing is dropped silently.

While the hub greets a socket (`hello`, then the state sync), live messages
published to it are held (coalesced like the queue) and sent after the sync, so
the sync comes first in its documented order; a held message the sync carried
already (same type and data: it read the state the message announced) is not
sent twice. A proctor's rebalance push holds them the same way while it reads.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from server.auth import Session
from server.hubs.eager import start_eagerly
from server.protocol import Codec, Outbound, encode_bytes
from server.store.records import UserRecord

log = logging.getLogger("proctorhub.hubs.connection")

MAX_AWAITING_ACK = 64
AsgiSend = Callable[[dict[str, Any]], Awaitable[None]]


class NowWriter(Protocol):
    """A synchronous write for a socket that can take a frame now (server/ws_protocol.py)."""

    def ready(self) -> bool: ...

    def write(self, frame: bytes, text: bool) -> None: ...


class ConnectionState(enum.Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class _Slot:
    """A queued message; coalescing swaps `message` in place, keeping its place in line."""

    __slots__ = ("message",)

    def __init__(self, message: Outbound) -> None:
        self.message = message


class Connection:
    def __init__(
        self,
        conn_id: str,
        send: AsgiSend,
        codec: Codec,
        *,
        queue_size: int,
        send_timeout_s: float,
        on_overflow: Callable[[Connection], None],
        on_sent: Callable[[str], None] = lambda msg_type: None,
        now_writer: NowWriter | None = None,
    ) -> None:
        self.conn_id = conn_id
        self.codec = codec
        self.state = ConnectionState.CONNECTING
        self.session: Session | None = None
        self.topics: set[str] = set()
        self.synced = False
        """The state sync after `hello` is out: later changes are pushed, not read by it."""
        self.assigned: frozenset[str] = frozenset()
        """The rooms of the last `room.assign` sent to this socket."""
        self.shown: set[str] = set()
        """A proctor's candidates of its last `roster` and of the statuses of its rooms since: a
        candidate without a room has its status sent to these proctors only (`Fanout.deliver`)."""
        self.stale = False
        """An assignment changed during the state sync or a push, after it may have read it: push again."""
        self.reassigning = False
        """A push of the socket's assignment is under way (`Seating.reassign`: one at a time)."""
        self.awaiting_ack: dict[int, object] = {}
        """Message id -> the `ack_key` of a pushed message the client has not acked yet."""
        self.tokens: dict[str, tuple[str, float]] = {}
        """room_id -> (jti, exp) of the 100ms token the client has acked for that room."""
        self.sent = 0
        """Frames written to the socket."""
        self.joined: UserRecord | None = None
        """The user's record as the connect left it, for the state sync right after (then None)."""
        self._asgi_send = send
        self._now_writer = now_writer
        self._queue: deque[_Slot] = deque()
        self._pending: dict[str, _Slot] = {}
        self._queue_size = queue_size
        self._send_timeout_s = send_timeout_s
        self._on_overflow = on_overflow
        self._on_sent = on_sent
        self._writer: asyncio.Task[None] | None = None
        self._writing = False
        self.send_since: float | None = None
        """When the send in progress began (monotonic), while one is; for the hub's watchdog."""
        self._next_id = 1
        self._held: list[Outbound] | None = None
        self._held_at: dict[str, int] = {}
        """coalesce key -> its message's place in `_held`: held updates coalesce like queued ones."""

    @property
    def role(self) -> str | None:
        return None if self.session is None else self.session.role

    @property
    def user_key(self) -> tuple[str, str]:
        session = self._require_session()
        return session.event_id, session.user_id

    def _require_session(self) -> Session:
        if self.session is None:
            raise RuntimeError(f"Expected an authenticated connection, but got {self.state.value}")
        return self.session

    def open(self, session: Session) -> None:
        if self.state is not ConnectionState.CONNECTING:
            raise RuntimeError(f"Expected state connecting, but got {self.state.value}")
        self.session = session
        self.state = ConnectionState.OPEN

    # ------------------------------------------------------------------ sending

    def hold(self) -> None:
        """Keep live messages aside until `unhold` (the greeting goes first, with `first=True`)."""
        self._held = []
        self._held_at = {}

    def unhold(self, carried: list[Outbound]) -> None:
        """Send what was held, less the messages `carried` (the state sync) sent already."""
        held, self._held = self._held or [], None
        seen = [(m.type, m.data) for m in carried]
        for message in held:
            if (message.type, message.data) not in seen:
                self.send(message)

    def send(self, message: Outbound, *, first: bool = False) -> bool:
        """Queue a message; False if the connection is closing or the queue overflowed.

        `first`: part of the greeting (`hello`, the state sync), sent even while live messages are held."""
        if self.state in (ConnectionState.CLOSING, ConnectionState.CLOSED):
            return False
        key = message.coalesce_key
        if self._held is not None and not first:
            return self._hold(self._held, message, key)
        if not self._writing and not self._queue and self._write_now(message):
            return True
        if key is not None:
            waiting = self._pending.get(key)
            if waiting is not None:
                waiting.message = message
                return True
        if len(self._queue) >= self._queue_size:
            self._on_overflow(self)
            return False
        slot = _Slot(message)
        self._queue.append(slot)
        if key is not None:
            self._pending[key] = slot
        if not self._writing:
            self._writing = True
            self._writer = start_eagerly(self._drain(), f"writer {self.conn_id}")
        return True

    def _hold(self, held: list[Outbound], message: Outbound, key: str | None) -> bool:
        """Keep a live message for `unhold`; a newer update with the same key takes the older's place."""
        if key is not None and (place := self._held_at.get(key)) is not None:
            held[place] = message
            return True
        if len(held) >= self._queue_size:
            self._on_overflow(self)
            return False
        if key is not None:
            self._held_at[key] = len(held)
        held.append(message)
        return True

    async def _drain(self) -> None:
        try:
            while self._queue and self.state is not ConnectionState.CLOSED:
                slot = self._queue.popleft()
                message = slot.message
                if message.coalesce_key is not None and self._pending.get(message.coalesce_key) is slot:
                    del self._pending[message.coalesce_key]
                await self._write(message)
        except (OSError, RuntimeError) as exc:
            # The peer went away mid-send; the reader sees the disconnect and cleans up.
            log.debug("conn %s: send failed: %s", self.conn_id, exc)
        finally:
            self._writing = False
            self._writer = None
            self.send_since = None

    def stuck(self, now: float) -> bool:
        """The watchdog's question: has one send been waiting longer than the send timeout? Then
        the writer stops and the socket is closed 1013 (the client comes back with its whole state)."""
        if self.send_since is None or now - self.send_since <= self._send_timeout_s:
            return False
        log.info("conn %s: send stuck for %ss, closing 1013", self.conn_id, self._send_timeout_s)
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()
        self._on_overflow(self)
        return True

    def _write_now(self, message: Outbound) -> bool:
        """The usual case, nothing queued and nothing being written: write here, without a coroutine,
        if the socket takes the frame at once. False: it must wait, so it goes through the queue."""
        writer = self._now_writer
        if writer is None or not writer.ready():
            return False
        try:
            writer.write(self._frame(message), self.codec is Codec.JSON)
        except (OSError, RuntimeError) as exc:
            log.debug("conn %s: send failed: %s", self.conn_id, exc)
            return True  # the peer went away; the reader sees the disconnect and cleans up
        self._written(message)
        return True

    async def _write(self, message: Outbound) -> None:
        frame = self._frame(message)
        self.send_since = time.monotonic()
        if self.codec is Codec.JSON:
            await self._asgi_send({"type": "websocket.send", "text": frame.decode()})
        else:
            await self._asgi_send({"type": "websocket.send", "bytes": frame})
        self.send_since = None
        self._written(message)

    def _frame(self, message: Outbound) -> bytes:
        """The message's frame under the next id; a pushed message awaits its ack from now on (a
        client may ack before the write returns)."""
        msg_id = self._next_id
        self._next_id += 1
        if message.ack_key is not None:
            if len(self.awaiting_ack) >= MAX_AWAITING_ACK:
                del self.awaiting_ack[next(iter(self.awaiting_ack))]
            self.awaiting_ack[msg_id] = message.ack_key
        return encode_bytes(message, self.codec, msg_id=msg_id, ts_ms=int(time.time() * 1000))

    def _written(self, message: Outbound) -> None:
        self.sent += 1
        self._on_sent(message.type)

    @property
    def queued(self) -> int:
        return len(self._queue)

    # ------------------------------------------------------------------ closing

    async def close(self, code: int, reason: str = "") -> None:
        """Close with a documented code; queued messages are discarded (state sync restores them)."""
        if self.state in (ConnectionState.CLOSING, ConnectionState.CLOSED):
            return
        self.state = ConnectionState.CLOSING
        self._held = None
        self._queue.clear()
        self._pending.clear()
        writer = self._writer
        if writer is not None and writer is not asyncio.current_task():
            writer.cancel()
        try:
            await self._asgi_send({"type": "websocket.close", "code": code, "reason": reason[:120]})
        except (OSError, RuntimeError) as exc:
            log.debug("conn %s: close %s failed: %s", self.conn_id, code, exc)

    def closed(self) -> None:
        self.state = ConnectionState.CLOSED
        if self._writer is not None:
            self._writer.cancel()
            self._writer = None
