"""100ms tokens kept fresh on the timer heap, with a fake clock: `TokenKeeper` and `TimerLoop`
in-process on each store (a `MemoryStore`, and a `RedisStore` on a real redis-server).

Time is the subject here, so the clock is ours: it moves in steps of `STEP` and after each step
every node's timer loop runs what is due and the refreshes it started finish. Minutes of token
lifetimes take a second. The tabs are candidate pages in miniature on a real `Connection` whose
socket records the frames: they apply every token pushed and ack it, as the hub's `ack`
handler would hand it back (or hold the ack back when a test says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import jwt
import orjson
import pytest

from server.auth import Session
from server.config import Settings
from server.hubs.connection import Connection
from server.hubs.timers import TimerLoop
from server.hubs.tokens import TokenAck, TokenKeeper, refresh_lead
from server.metrics import HubMetrics
from server.protocol import Codec, Outbound
from server.store.base import Store
from server.store.records import EventConfig, HeldToken
from server.store.redis import RedisStore
from server.store.tokens import TokenStore
from tests.fake_clock import FakeClock, timers_ran
from tests.polling import eventually

EVENT, ROOM = "tok-ev", "room-1"
TTL = 20.0
"""Token lifetime: renewed `refresh_lead(20)` = 6.7 s before exp, minus up to half that in jitter."""
LEAD = refresh_lead(TTL)
STEP = 0.25
"""How far the fake clock moves at a time: a push arrives at most this late after its timer."""
START = 1_700_000_000.0
SETTINGS = Settings(hub_secret="s" * 32, hms_access_key="sim-key", hms_secret="h" * 40)


@dataclass(frozen=True)
class Pushed:
    """A token a tab received: how (`room.assign` or `token.refresh`), when (fake time), what."""

    type: str
    at: float
    claims: dict[str, Any]
    data: dict[str, Any]

    @property
    def jti(self) -> str:
        return str(self.claims["jti"])

    @property
    def exp(self) -> float:
        return float(self.data["token_exp"])


class Tab:
    """A candidate page in miniature: applies every token pushed to its socket and acks it."""

    def __init__(self, node: Node, conn_id: str, user_id: str) -> None:
        self.node = node
        self.user_id = user_id
        self.acking = True
        self.tokens: list[Pushed] = []
        self.unacked: list[int] = []
        self.overflows: list[Connection] = []
        self.conn = Connection(
            conn_id,
            self._socket,
            Codec.JSON,
            queue_size=64,
            send_timeout_s=5,
            on_overflow=self.overflows.append,
        )
        self.conn.open(Session(user_id=user_id, event_id=EVENT, role="candidate", exp=START + 1e6, iat=START))

    async def _socket(self, message: dict[str, Any]) -> None:
        """The socket's far end. It never waits, so a frame is recorded as soon as it is written."""
        if message["type"] != "websocket.send":
            return
        frame = orjson.loads(message["text"])
        if frame["type"] not in ("room.assign", "token.refresh"):
            return
        data = frame["data"]
        claims = jwt.decode(data["hms_token"], options={"verify_signature": False})
        self.tokens.append(Pushed(frame["type"], self.node.clock(), claims, data))
        self.unacked.append(frame["id"])
        if self.acking:
            self.ack()

    def ack(self) -> None:
        """Ack every token received so far, as the hub's `ack` handler hands each back to the keeper."""
        for msg_id in self.unacked:
            pushed = self.conn.awaiting_ack.pop(msg_id, None)
            if pushed is not None:
                self.node.keeper.acked(self.conn, pushed)
        self.unacked.clear()

    @property
    def newest(self) -> Pushed:
        return self.tokens[-1]

    def refreshes(self) -> list[Pushed]:
        return [t for t in self.tokens if t.type == "token.refresh"]


class CountedTokens:
    """The store's tokens, counting `swap_token` calls (each is a token minted and offered)."""

    def __init__(self, tokens: TokenStore) -> None:
        self._tokens = tokens
        self.swaps = 0

    async def get_token(self, event_id: str, user_id: str, room_id: str) -> HeldToken | None:
        return await self._tokens.get_token(event_id, user_id, room_id)

    async def swap_token(self, new: HeldToken, *, replaces: str | None) -> HeldToken:
        self.swaps += 1
        return await self._tokens.swap_token(new, replaces=replaces)


class Node:
    """One hub node's token machinery: its own `TimerLoop` and `TokenKeeper` on the shared store."""

    def __init__(self, store: Store, clock: FakeClock, seed: int) -> None:
        self.store = store
        self.clock = clock
        self.metrics = HubMetrics()
        self.timers = TimerLoop(clock)
        self.tokens = CountedTokens(store.tokens)
        self.keeper = TokenKeeper(
            SETTINGS,
            self.tokens,
            store.events,
            self.metrics,
            self.timers,
            clock,
            spawn=self._spawn,
            rng=random.Random(seed),
        )
        self.tabs: list[Tab] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._loop = asyncio.create_task(self.timers.run())

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def connect(self, user_id: str = "c1") -> Tab:
        """What the state sync does for a seated candidate: the held token (renewed first if it is
        due), kept fresh from now on, and sent in `room.assign` (acked like any token push)."""
        tab = Tab(self, f"{id(self)}-{len(self.tabs)}", user_id)
        self.tabs.append(tab)
        key = (EVENT, user_id, ROOM)
        token = await self.keeper.token_for(key, role="candidate", lifetime_s=TTL)
        self.keeper.hold(tab.conn, key, token, role="candidate", lifetime_s=TTL)
        data = {"room_id": ROOM, "hms_token": token.token, "token_exp": int(token.exp), "reason": "join"}
        tab.conn.send(Outbound("room.assign", data, ack_key=TokenAck(((ROOM, token.jti, token.exp),))))
        await self.settle()
        return tab

    def disconnect(self, tab: Tab) -> None:
        """The socket closed: what the hub does when its reader ends."""
        self.keeper.release(tab.conn)
        tab.conn.closed()
        self.tabs.remove(tab)

    async def settle(self) -> None:
        """Run what is due at the clock's time: the timers, the refreshes they start, their pushes."""
        while True:
            await timers_ran(self.timers)
            if not self._tasks:
                break
            tasks, self._tasks = self._tasks, []
            await asyncio.gather(*tasks)
        await eventually(
            lambda: all(t.conn.queued == 0 for t in self.tabs), interval=0, what="pushes written"
        )

    def sample(self, name: str) -> float:
        return self.metrics.registry.get_sample_value(f"proctorhub_{name}_total") or 0.0

    async def stop(self) -> None:
        for tab in list(self.tabs):
            assert not tab.overflows
            for pushed in tab.tokens:
                assert pushed.data["room_id"] == ROOM and pushed.claims["room_id"] == ROOM
                assert pushed.claims["user_id"] == tab.user_id and pushed.claims["exp"] == pushed.exp
            self.disconnect(tab)
        self._loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._loop
        assert self.sample("token_refresh_errors") == 0


@pytest.fixture
async def world(store: Store) -> AsyncIterator[World]:
    assert await store.events.create_event(EventConfig(EVENT, EVENT, token_ttl_s=int(TTL)))
    w = World(store, FakeClock(START))
    yield w
    for node in w.nodes:
        await node.stop()


class World:
    """Nodes sharing one store and one fake clock."""

    def __init__(self, store: Store, clock: FakeClock) -> None:
        self.store = store
        self.clock = clock
        self.nodes: list[Node] = []

    def node(self, seed: int) -> Node:
        node = Node(self.store, self.clock, seed)
        self.nodes.append(node)
        return node

    async def run(self, seconds: float, after_step: Callable[[], None] = lambda: None) -> None:
        """Move the clock `seconds` forward a step at a time; the nodes settle, together, after each."""
        end = self.clock.now + seconds
        while self.clock.now < end:
            self.clock.now = min(end, self.clock.now + STEP)
            await asyncio.gather(*(node.settle() for node in self.nodes))
            after_step()

    async def run_until(self, check: Callable[[], object], within: float) -> None:
        """Move the clock a step at a time until `check` holds, for at most `within` seconds."""
        end = self.clock.now + within
        while not check():
            assert self.clock.now < end, f"not within {within} s of fake time"
            await self.run(STEP)

    async def refreshed(self) -> int:
        return (await self.store.events.get_counters(EVENT)).get("tokens_refreshed", 0)


def holds_a_valid_token(world: World, *tabs: Tab) -> Callable[[], None]:
    def check() -> None:
        for tab in tabs:
            assert tab.newest.exp > world.clock.now, f"at {world.clock.now - START} s only expired tokens"

    return check


def assert_pushed_within_the_lead(tab: Tab, *, minted_on_push: bool = True) -> None:
    """Each new token came `LEAD` to 1.5 `LEAD` before the previous one expired (give or take a
    step of the clock), and (if this node minted it) lives `TTL` from then."""
    for before, after in itertools.pairwise(tab.tokens):
        if after.jti == before.jti:
            continue
        assert before.exp - 1.5 * LEAD <= after.at <= before.exp - LEAD + STEP, (before, after)
        if minted_on_push:
            assert after.exp == int(after.at + TTL), after


# ---------------------------------------------------------------- one node


async def test_a_candidate_always_holds_a_valid_token(world: World) -> None:
    node = world.node(seed=1)
    tab = await node.connect()
    await world.run(120, holds_a_valid_token(world, tab))
    refreshes = tab.refreshes()
    assert len(refreshes) >= 120 // TTL  # one per (TTL - lead - jitter) <= 13.3 s: at least 9
    assert len({t.jti for t in tab.tokens}) == len(tab.tokens) == 1 + len(refreshes)  # no resends
    assert_pushed_within_the_lead(tab)
    assert await world.refreshed() == len(refreshes)
    assert node.sample("tokens_minted") == 1 + len(refreshes)
    assert node.sample("token_refreshes_acked") == len(refreshes)
    assert node.sample("token_resends") == 0


async def test_tokens_minted_together_are_renewed_apart(world: World) -> None:
    node = world.node(seed=2)
    tabs = [await node.connect(f"c{i}") for i in range(40)]
    await world.run(TTL - LEAD + STEP)  # past every first refresh (at most TTL - LEAD after minting)
    firsts = [tab.refreshes()[0].at for tab in tabs if tab.refreshes()]
    assert len(firsts) == 40
    busiest = max(firsts.count(at) for at in firsts)
    assert busiest <= 10, f"{busiest} of 40 refreshed in the same {STEP} s"
    assert max(firsts) - min(firsts) >= LEAD / 4


async def test_an_unacked_push_is_sent_again_until_acked(world: World) -> None:
    node = world.node(seed=3)
    tab = await node.connect()
    tab.acking = False
    await world.run_until(tab.refreshes, within=TTL)
    [pushed] = tab.refreshes()
    every = min(10.0, max(1.0, LEAD / 4))  # the keeper's resend delay for this lifetime: 1.7 s
    await world.run(3 * every + 3 * STEP)  # each resend may come a step late
    copies = [t for t in tab.refreshes() if t.jti == pushed.jti]
    assert len(copies) == 4, copies  # the push and three resends
    assert all(b.at - a.at >= every for a, b in itertools.pairwise(copies))
    assert node.sample("token_resends") == 3

    tab.ack()
    tab.acking = True
    await world.run(3 * every)
    assert [t for t in tab.refreshes() if t.jti == pushed.jti] == copies
    assert node.sample("token_resends") == 3
    assert node.sample("token_refreshes_acked") >= 1


async def test_a_tab_that_reconnects_right_after_a_push_gets_the_new_token(world: World) -> None:
    node = world.node(seed=4)
    tab = await node.connect()
    tab.acking = False  # the refresh arrives, its ack is still in flight when the socket drops
    await world.run_until(tab.refreshes, within=TTL)
    [pushed] = tab.refreshes()
    node.disconnect(tab)
    again = await node.connect()
    assert again.newest.type == "room.assign" and again.newest.jti == pushed.jti
    assert again.newest.exp > world.clock.now + LEAD
    frames_before = len(tab.tokens)
    await world.run(3 * TTL, holds_a_valid_token(world, again))
    assert len(tab.tokens) == frames_before  # nothing more, not even a resend, on the closed socket
    assert len(again.refreshes()) >= 3
    assert_pushed_within_the_lead(again)
    assert node.sample("token_resends") == 0


async def test_tabs_of_one_user_share_one_token(world: World) -> None:
    node = world.node(seed=5)
    first = await node.connect()
    await world.run(3)
    second = await node.connect()
    assert second.newest.jti == first.newest.jti
    await world.run(3 * TTL, holds_a_valid_token(world, first, second))
    assert [t.jti for t in second.refreshes()] == [t.jti for t in first.refreshes()]
    assert len(first.refreshes()) >= 3
    assert node.sample("tokens_minted") == 1 + len(first.refreshes())


# ---------------------------------------------------------------- two nodes


@pytest.mark.parametrize("seeds", [(6, 7), (8, 8)], ids=["apart", "same-instant"])
async def test_tabs_on_two_nodes_share_one_token(world: World, seeds: tuple[int, int]) -> None:
    """Each node refreshes the user's token on its own timer. With different jitter the later one
    finds the token already renewed and pushes it; at the same instant (same seed) both mint and
    `swap_token` lets one token win. Either way both tabs hold the same tokens, one per round."""
    node_a, node_b = world.node(seeds[0]), world.node(seeds[1])
    tab_a = await node_a.connect()
    tab_b = await node_b.connect()
    assert tab_b.newest.jti == tab_a.newest.jti
    await world.run(4 * TTL, holds_a_valid_token(world, tab_a, tab_b))
    a, b = [t.jti for t in tab_a.tokens], [t.jti for t in tab_b.tokens]
    assert abs(len(a) - len(b)) <= 1 and a[: len(b)] == b[: len(a)], (a, b)
    assert len(set(a)) == len(a) >= 5
    rounds = len(set(a) | set(b)) - 1
    assert await world.refreshed() == rounds
    assert node_a.sample("tokens_minted") + node_b.sample("tokens_minted") == 1 + rounds
    assert_pushed_within_the_lead(tab_a, minted_on_push=False)
    assert_pushed_within_the_lead(tab_b, minted_on_push=False)
    if seeds[0] == seeds[1] and isinstance(world.store, RedisStore):
        # Redis answers both nodes' reads before either swaps: both mint and one swap loses.
        assert node_a.tokens.swaps + node_b.tokens.swaps > 1 + rounds, "no refresh raced"
