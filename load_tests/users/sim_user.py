"""What every simulated user does with its socket: connect, authenticate, reconnect like the page.

`SimUser` holds one WebSocket (wire.Socket) at a time and runs `connection_loop`: connect, send
`auth`, wait for `hello`; when the socket closes, wait as the close code says (`reconnect_delay`,
PROTOCOL.md's close codes, full jitter) and go again, unless the network is "gone" (churn, proctor
loss: wait until it is back) or the user stopped. Subclasses (candidate.py, proctor.py) handle the
messages. `Shared` is what all users of one worker share: URLs, session tokens, the records.
"""

from __future__ import annotations

import asyncio
import collections
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from load_tests.users import wire
from load_tests.users.http_lite import HttpError, HttpPool
from load_tests.users.token_watch import TokenLog
from server.auth import mint_session

IDS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b[0-9a-f]{24}\b")
STOP_CODES = frozenset({1000, 1008, 1009, 4400, 4403})
CONNECT_TIMEOUT_S = 15.0
HELLO_TIMEOUT_S = 15.0
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 15.0


def reconnect_delay(code: int, attempt: int, rng: random.Random) -> float | None:
    """Seconds to wait before reconnecting after a close with `code` (None: do not reconnect).

    1012 (node draining): at once, spread over a second. Everything else that may be retried:
    exponential backoff from 0.5 s capped at 15 s, with full jitter (uniform from 0), so a hub
    that dropped thousands of sockets is not hit by all of them in the same instant."""
    if code in STOP_CODES:
        return None
    if code == 1012:
        return rng.uniform(0.0, 1.0)
    return rng.uniform(0.0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** min(attempt, 16)))


@dataclass
class Records:
    """Everything the users of one worker saw and did; sent to the main process at the end."""

    joins: list[tuple[float, float, bool]] = field(
        default_factory=list
    )  # (auth sent, s to room.assign, first)
    actions: list[tuple[float, str, str, str]] = field(default_factory=list)  # (t, candidate, field, value)
    deliveries: list[tuple[float, str, str, str, int]] = field(default_factory=list)  # proctors' view
    alerts: dict[tuple[str, str], tuple[float, dict[str, Any]]] = field(default_factory=dict)
    new_alerts: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    media_failures: list[dict[str, Any]] = field(default_factory=list)
    peers: list[dict[str, Any]] = field(default_factory=list)
    injected: list[dict[str, Any]] = field(default_factory=list)
    # every socket that got its hello: (user, role, node index, hello at, closed at, code, closed by
    # the user itself: finish, stop, network loss) and every room.assign a candidate got (user, t, room)
    links: list[tuple[str, str, int, float, float, int, bool]] = field(default_factory=list)
    assigns: list[tuple[str, float, str]] = field(default_factory=list)
    # every moment a user went away on its own (network loss, finish), socket open or not: one whose
    # network goes while it waits to reconnect closes no socket, yet cannot be back before its network is
    leaves: list[tuple[str, float]] = field(default_factory=list)
    backfill: list[dict[str, Any]] = field(default_factory=list)  # each segment archived (backfill_page)
    closes: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    counts: collections.Counter[str] = field(default_factory=collections.Counter)

    def alert(self, message: dict[str, Any], now: float) -> None:
        data = message.get("data") or {}
        key = (str(data.get("alert_id")), str(data.get("state")))
        if key not in self.alerts:
            self.alerts[key] = (now, data)
            self.new_alerts.append((now, data))

    def error(self, text: str) -> None:
        self.errors[IDS.sub("<id>", text)[:160]] += 1


DOWN_S = 5.0  # a node that refused a connection is left out of the rotation this long


class Shared:
    """Per worker: the target's URLs and credentials, the media plane pool, the records; and the load
    balancer in front of the hub's nodes: round robin per connection, a node that refuses one is
    marked down for a while and the next is tried at once (a proxy's passive health check)."""

    def __init__(self, config: dict[str, Any], records: Records, tokens: TokenLog) -> None:
        self.ws_urls: list[str] = list(config.get("ws_urls") or [config["ws_url"]])
        self.down_until = [0.0] * len(self.ws_urls)
        self._turn = int(config.get("seed", 0)) % len(self.ws_urls)
        self.event_id: str = config["event_id"]
        self.secret: str | None = config.get("secret")
        self.api_key: str | None = config.get("api_key")
        self.session_ttl_s: int = int(config["session_ttl_s"])
        self.t0: float = config["t0"]
        self.keep_open_s = float(config.get("keep_open_s", 120.0))
        """How long a finished candidate's page stays open at most for the hub's backfill requests."""
        self.media = HttpPool(config["media_url"], size=64)
        self.hub = HttpPool(config["hub_url"], size=16)
        self._pools: dict[str, HttpPool] = {}  # other origins the hub sends users to (a bucket's PUT URLs)
        self.records = records
        self.tokens = tokens
        self.rng = random.Random(config.get("seed", 0))

    async def session_token(self, user_id: str, role: str) -> str:
        """A host-app session token: minted with the secret, or asked of the hub with the API key."""
        if self.secret:
            return mint_session(
                self.secret,
                user_id=user_id,
                event_id=self.event_id,
                role=role,  # type: ignore[arg-type]
                now=time.time(),
                ttl_s=self.session_ttl_s,
                name=user_id,
            )
        body = {"user_id": user_id, "role": role, "ttl_s": self.session_ttl_s}
        status, answer = await self.hub.request(
            "POST",
            f"/api/v1/events/{self.event_id}/sessions",
            body,
            {"Authorization": f"Bearer {self.api_key}"},
        )
        if status != 200 and status != 201:
            raise HttpError(f"session for {user_id}: {status} {str(answer)[:120]}")
        return str(answer["token"])

    def pick(self) -> int:
        """The next node in the rotation that is not marked down (any, if all are)."""
        now = time.time()
        for _ in range(len(self.ws_urls)):
            node, self._turn = self._turn, (self._turn + 1) % len(self.ws_urls)
            if self.down_until[node] <= now:
                return node
        return self._turn

    def mark_down(self, node: int) -> None:
        self.down_until[node] = time.time() + DOWN_S

    def pool(self, origin: str) -> HttpPool:
        """A pool for another origin the hub named (a presigned bucket URL for a backfill upload)."""
        if origin not in self._pools:
            self._pools[origin] = HttpPool(origin, size=8)
        return self._pools[origin]

    async def aclose(self) -> None:
        await self.media.aclose()
        await self.hub.aclose()
        for pool in self._pools.values():
            await pool.aclose()


class SimUser:
    """One user's connection lifecycle; subclasses fill in `handlers`."""

    role = "candidate"

    def __init__(self, shared: Shared, user_id: str, codec: str) -> None:
        self.shared = shared
        self.user_id = user_id
        self.codec = codec
        self.sock: wire.Socket | None = None
        self.ready = False  # hello received on the current socket
        self.stopped = False  # no more reconnects
        self.offline_until = 0.0  # the network is gone until then (epoch s)
        self.attempt = 0
        self.connections = 0
        self.auth_sent = 0.0
        self.node = 0  # the node (index in Shared.ws_urls) of the current socket
        self.hello_at = 0.0
        self._session: str | None = None
        self._hello: asyncio.Future[bool] | None = None  # True: hello came; False: closed first
        self._closed: asyncio.Future[int] | None = None
        self.handlers: dict[str, Callable[[dict[str, Any], float], None]] = {}

    # ---------------------------------------------------------------- wire.Owner

    def on_open(self, sock: wire.Socket) -> None:
        self.sock = sock
        if self.stopped:  # stopped while connecting: leave at once rather than log in
            sock.close(1000)
            return
        if self._session is not None:
            sock.send("auth", {"token": self._session})
            self.auth_sent = time.time()

    def on_message(self, message: dict[str, Any], now: float) -> None:
        kind = message.get("type")
        if kind == "hello":
            self.ready = True
            self.hello_at = now
            self.connected()
            if self._hello is not None and not self._hello.done():
                self._hello.set_result(True)
            return
        handler = self.handlers.get(str(kind))
        if handler is not None:
            handler(message, now)
        elif kind == "error":
            self.shared.records.error(f"error {(message.get('data') or {}).get('code')}")

    def on_close(self, code: int) -> None:
        self.ready = False
        if self._hello is not None and not self._hello.done():
            self._hello.set_result(False)
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(code)

    # ---------------------------------------------------------------- lifecycle

    @property
    def is_open(self) -> bool:
        return self.ready and self.sock is not None and self.sock.is_open

    async def _connect_once(self) -> int:
        """One socket from connect to close; its close code (wire.ABNORMAL if it never opened)."""
        records = self.shared.records
        loop = asyncio.get_running_loop()
        self._hello, self._closed = loop.create_future(), loop.create_future()
        try:
            if self._session is None:
                self._session = await self.shared.session_token(self.user_id, self.role)
            self.sock = await self._open()
            if self.network_gone:
                # The network went while this socket was connecting (lose_network had no socket to
                # drop): a real one would not survive that either, nor let the user come online.
                self.sock.abort()
                return await self._closed
            if not await asyncio.wait_for(asyncio.shield(self._hello), HELLO_TIMEOUT_S):
                raise ConnectionError("closed before hello")
        except (OSError, TimeoutError, ConnectionError, HttpError) as exc:
            if not self.network_gone:  # its own network loss is no failure to connect
                records.error(f"connect: {type(exc).__name__}: {exc}")
            if self.sock is not None:
                self.sock.abort()
                return await self._closed
            return wire.ABNORMAL
        self.connections += 1
        self.attempt = 0
        code = await self._closed
        records.links.append(
            (self.user_id, self.role, self.node, self.hello_at, time.time(), code, self.leaving)
        )
        return code

    async def _open(self) -> wire.Socket:
        """A socket through the load balancer: the next node in turn; one that refuses is marked down
        and the next one tried (as a proxy retries the next upstream on a refused connect)."""
        shared = self.shared
        for _ in range(len(shared.ws_urls)):
            self.node = shared.pick()
            try:
                return await wire.connect(shared.ws_urls[self.node], self, self.codec, CONNECT_TIMEOUT_S)
            except ConnectionRefusedError:
                shared.mark_down(self.node)
        raise ConnectionRefusedError(f"all {len(shared.ws_urls)} hub nodes refused the connection")

    @property
    def network_gone(self) -> bool:
        """The user's network is down (churn, proctor loss): no socket of its gets through."""
        return self.offline_until > time.time()

    @property
    def leaving(self) -> bool:
        """The user closes or lost its socket itself (stopped, finished, its network gone)."""
        return self.stopped or self.network_gone

    def connected(self) -> None:
        """Called on each `hello`, before the state sync that follows it is handled."""

    async def connection_loop(self) -> None:
        records = self.shared.records
        while not self.stopped:
            wait = self.offline_until - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            code = await self._connect_once()
            self.sock = None
            records.closes[str(code)] += 1
            if self.stopped or self.network_gone:
                continue
            delay = reconnect_delay(code, self.attempt, self.shared.rng)
            if delay is None:
                records.error(f"closed {code}: stopped reconnecting")
                return
            if code == 4401:
                self._session = None  # not authenticated / expired: get a new session token
            self.attempt += 1
            records.counts["reconnects"] += 1
            await asyncio.sleep(delay)

    def lose_network(self, away_s: float) -> None:
        """The network goes for `away_s` (0: for good): the socket drops without a close frame."""
        if away_s <= 0:
            self.stopped = True
        now = time.time()
        self.shared.records.leaves.append((self.user_id, now))
        self.offline_until = now + away_s
        if self.sock is not None:
            self.sock.abort()

    def send(self, kind: str, data: dict[str, Any]) -> int:
        return self.sock.send(kind, data) if self.sock is not None and self.ready else 0

    def stop(self, code: int = 1000) -> None:
        self.stopped = True
        if self.sock is not None:
            self.sock.close(code)


async def sleep_until(t: float) -> None:
    delay = t - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
