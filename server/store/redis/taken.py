"""A redis-py connection whose transport the node took over, so replies are read where they arrive.

redis-py opens the connection (AUTH, TLS, the RESP version, as the URL says) and reads it through an
asyncio stream: each read wakes a reader task, which acts one loop turn later. The command connection
(`batching._Pipe`) and the pub/sub connection (`subscriber.SubscriberConnection`) take the transport
over as its protocol instead and parse in `data_received`. redis-py's stream is still told when the
connection ends, so its own bookkeeping (and a later `disconnect`) stays right.
"""

from __future__ import annotations

import asyncio

from redis.exceptions import ConnectionError as RedisConnectionError


class TakenConnection(asyncio.Protocol):
    """Subclasses parse in `data_received` and hear of the end in `_lost`."""

    what = "connection"
    """How the connection is named in the errors its end raises."""

    def _take(self, transport: asyncio.Transport) -> None:
        """Become the transport's protocol (call last in `__init__`: data may come from the next turn)."""
        self._transport = transport  # uvloop's transports have asyncio's methods, not its classes
        self._stream_protocol = transport.get_protocol()
        transport.set_protocol(self)

    def _lost(self, exc: BaseException) -> None:
        raise NotImplementedError

    def eof_received(self) -> bool:
        self._lost(RedisConnectionError(f"Redis closed the {self.what}"))
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost(exc or RedisConnectionError(f"the {self.what} closed"))
        self._stream_protocol.connection_lost(exc)  # redis-py's stream sees its connection end
