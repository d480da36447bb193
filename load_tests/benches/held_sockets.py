"""Client side of the bench: lean WebSocket clients in worker processes, driven over a pipe.

A client is an `asyncio.Protocol` around the `websockets` sans-I/O `ClientProtocol`
(no compression, no task per socket, pings answered by the protocol), so one worker
holds thousands of sockets. A message is timestamped with `time.time()` when its bytes
reach `data_received`, before any parsing, so decoding cost stays out of the figures.

The main process talks to each worker with `(command, args)` tuples over a
`multiprocessing` pipe; see `_Worker.handle` for the commands.

Once its sockets are open a worker freezes what it holds out of the garbage collector: a full
collection walks every client's objects, and the pause delays the timestamps of everything read
meanwhile, which the figures would blame on the hub. The worker reports its longest collection.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from load_tests.judge.stats import Action, Record, match_deliveries
from load_tests.users.token_watch import TOKEN_TYPES, TokenHolder, TokenWatch
from load_tests.users.wire import Socket
from load_tests.users.worker_pool import GcPauses, worker_setup

SUBPROTOCOL = Subprotocol("proctorhub.v1.json")


class LeanClient(Socket):
    """One authenticated socket: handshake, `auth`, waits for `hello`, records statuses.

    The socket is wire.Socket (its own owner); with a `TokenHolder` it also keeps its 100ms tokens
    and acks each at once (token_watch.py).
    """

    def __init__(self, url: str, token: str, record: bool, tokens: TokenHolder | None = None) -> None:
        super().__init__(url, self, "json")
        self.token = token
        self.records: list[Record] | None = [] if record else None
        self.hello: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.done: asyncio.Future[None] | None = None
        self.other: collections.Counter[str] = collections.Counter()
        self.close_code: int | None = None
        self.tokens = tokens

    # -------------------------------------------------------------- wire.Owner

    def on_open(self, sock: Socket) -> None:
        self.send("auth", {"token": self.token})  # id 1

    def on_close(self, code: int) -> None:
        self.close_code = code
        if not self.hello.done():
            self.hello.set_exception(ConnectionError(f"closed before hello ({code})"))
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def on_message(self, message: dict[str, Any], now: float) -> None:
        kind = message.get("type")
        if kind == "candidate.status" and self.records is not None:
            data = message.get("data") or {}
            self.records.append(
                (
                    now,
                    data.get("candidate_id", ""),
                    data.get("presence", ""),
                    data.get("video", ""),
                    int(message.get("ts") or 0),
                )
            )
        elif kind == "hello" and not self.hello.done():
            self.hello.set_result(None)
        else:
            self.other[str(kind)] += 1
            if kind in TOKEN_TYPES and self.tokens is not None:
                acked = self.tokens.receive(kind, message, now)
                if acked is not None and self.send("ack", {"id": acked}):
                    self.tokens.log.acks += 1

    def ping_seen(self) -> None:
        self.other["ping"] += 1

    async def aclose(self, timeout: float = 10.0) -> None:
        """Normal close (1000); abort the TCP connection if the server does not finish it in time."""
        if self.transport is None or self.transport.is_closing():
            return
        self.done = asyncio.get_running_loop().create_future()
        self.close(1000)
        try:
            await asyncio.wait_for(self.done, timeout)
        except TimeoutError:
            self.abort()


async def open_client(
    url: str, token: str, record: bool, timeout: float, tokens: TokenHolder | None = None
) -> LeanClient:
    """Connect, authenticate, wait for `hello`; raises on any failure."""
    parsed = parse_uri(url)
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        _, client = await loop.create_connection(
            lambda: LeanClient(url, token, record, tokens), parsed.host, parsed.port
        )
        await client.hello
    return client


class _Worker:
    """The state of one worker process: its clients and what they recorded."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.clients: list[LeanClient] = []
        self.tokens = TokenWatch(lambda: self.clients)
        self.gc = GcPauses()

    async def handle(self, command: str, args: dict[str, Any]) -> Any:
        handlers: dict[str, Callable[..., Any]] = {
            "open": self.open,
            "status": self.status,
            "collect": self.collect,
            "close": self.close,
            "tokens_watch": self.tokens.start,
            "tokens_report": self.tokens.report,
            "tokens_sample": self.tokens.sample,
        }
        return await handlers[command](**args)

    async def open(
        self,
        targets: list[tuple[str, str]],
        record: bool,
        concurrency: int = 128,
        timeout: float = 30.0,
        tokens: bool = False,
    ) -> dict[str, Any]:
        """Open one socket per (url, token), `concurrency` handshakes in flight at a time.

        `tokens`: the clients keep and ack their 100ms tokens (the `tokens` scenario)."""
        semaphore = asyncio.Semaphore(concurrency)
        errors: collections.Counter[str] = collections.Counter()

        async def one(url: str, token: str) -> None:
            async with semaphore:
                try:
                    holder = self.tokens.holder() if tokens else None
                    self.clients.append(await open_client(url, token, record, timeout, holder))
                except Exception as exc:
                    errors[f"{type(exc).__name__}: {exc}"[:160]] += 1

        started = time.time()
        await asyncio.gather(*(one(url, token) for url, token in targets))
        gc.collect()
        gc.freeze()
        self.gc.longest = 0.0
        return {
            "opened": len(targets) - sum(errors.values()),
            "errors": dict(errors),
            "started": started,
            "ended": time.time(),
        }

    async def status(self) -> dict[str, Any]:
        codes = collections.Counter(str(c.close_code) for c in self.clients if not c.is_open)
        other: collections.Counter[str] = collections.Counter()
        for client in self.clients:
            other.update(client.other)
        return {
            "open": sum(1 for c in self.clients if c.is_open),
            "total": len(self.clients),
            "close_codes": dict(codes),
            "other_messages": dict(other),
            "gc_longest_ms": round(self.gc.longest * 1000, 1),
        }

    async def collect(self, candidate_id: str, actions: list[Action]) -> dict[str, Any]:
        """Per action: latencies (s) of its deliveries, server-ts latencies (s), and sockets missing it."""
        return match_deliveries([c.records or [] for c in self.clients], candidate_id, actions)

    async def close(self, concurrency: int = 512) -> dict[str, Any]:
        semaphore = asyncio.Semaphore(concurrency)

        async def one(client: LeanClient) -> None:
            async with semaphore:
                await client.aclose()

        started = time.time()
        await asyncio.gather(*(one(c) for c in self.clients))
        self.clients = []
        return {"seconds": time.time() - started}


async def _serve(pipe: Connection, index: int) -> None:
    worker = _Worker(index)
    loop = asyncio.get_running_loop()
    while True:
        command, args = await loop.run_in_executor(None, pipe.recv)
        if command == "exit":
            break
        try:
            reply: Any = ("ok", await worker.handle(command, args))
        except Exception as exc:
            reply = ("error", f"{type(exc).__name__}: {exc}")
        pipe.send(reply)
    for client in worker.clients:
        if client.transport is not None:
            client.transport.abort()


def worker_main(pipe: Connection, index: int) -> None:
    """Entry point of a worker process (multiprocessing, spawn)."""
    worker_setup()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(pipe, index))
