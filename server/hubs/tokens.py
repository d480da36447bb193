"""Push-style 100ms token refresh: every connected client holds a valid token, always.

100ms cannot swap the token of a joined peer and its SDK re-presents the join
token on every reconnect (contract §1.5), so a client must always have a fresh
token at hand. The hub keeps ONE token per user and room in the store (all
tabs, all nodes share it) and pushes a new one in `token.refresh` before the
old expires: at the larger of 60 s or 10 % of the lifetime before `exp` (a
third of the lifetime when it is under 10 minutes), minus a random jitter of
up to half that lead, so tokens minted together are not renewed together.

Each node keeps one timer per (user, room) it has sockets for, on the shared
`TimerLoop` (no task per socket). Two nodes refreshing the same user race
through `Store.swap_token`; the loser pushes the winner's token. A push not
acked is sent again. A client that reconnects gets the held token (or a new
one, if the held one is close to expiry) in its state sync at once.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from server.config import Settings
from server.hms.tokens import mint_app_token
from server.hubs.connection import Connection, ConnectionState
from server.hubs.timers import Timer, TimerLoop
from server.metrics import HubMetrics
from server.protocol import Outbound
from server.store.events import EventStore
from server.store.records import HeldToken
from server.store.tokens import TokenStore

log = logging.getLogger("proctorhub.hubs.tokens")

Spawn = Callable[[Coroutine[Any, Any, None], str], None]
"""Runs a coroutine in the background, owned (the hub's `spawn`)."""
Key = tuple[str, str, str]
"""(event_id, user_id, room_id)"""


def refresh_lead(lifetime_s: float) -> float:
    """Seconds before `exp` at which a token is renewed (before jitter)."""
    if lifetime_s < 600:
        return lifetime_s / 3
    return max(60.0, lifetime_s * 0.1)


def refresh_at(token: HeldToken, lifetime_s: float, rng: random.Random) -> float:
    lead = refresh_lead(lifetime_s)
    return token.exp - lead - rng.uniform(0.0, lead / 2)


@dataclass(frozen=True, slots=True)
class TokenAck:
    """What a client acks when it applies a token push: (room_id, jti, exp) per room."""

    tokens: tuple[tuple[str, str, float], ...]


class TokenKeeper:
    def __init__(
        self,
        settings: Settings,
        store: TokenStore,
        events: EventStore,
        metrics: HubMetrics,
        timers: TimerLoop,
        clock: Callable[[], float],
        *,
        spawn: Spawn,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._events = events
        self._metrics = metrics
        self._timers = timers
        self._clock = clock
        self._rng = rng or random.Random()
        self._holders: dict[Key, set[Connection]] = defaultdict(set)
        self._keys_of: dict[str, set[Key]] = defaultdict(set)
        self._lifetimes: dict[Key, float] = {}
        self._roles: dict[Key, str] = {}
        self._timers_by_key: dict[Key, Timer] = {}
        self._local: dict[Key, HeldToken] = {}
        self._spawn_task = spawn

    # ------------------------------------------------------------------ tokens

    def hms_role(self, role: str) -> str:
        return self._settings.hms_proctor_role if role == "proctor" else self._settings.hms_candidate_role

    async def token_for(self, key: Key, *, role: str, lifetime_s: float) -> HeldToken:
        """The token the user holds for the room, renewed first if it is due.

        One round trip when none is held or the held one is still good: a new token is offered, and the
        store keeps (and answers with) the one already held, if any."""
        offered = self._mint(key, role, lifetime_s)
        held = await self._store.swap_token(offered, replaces=None)
        if held.jti == offered.jti:
            self._metrics.tokens_minted.inc()
            return held
        if held.exp - self._clock() > refresh_lead(lifetime_s):
            return held
        return await self._renew(key, held, role=role, lifetime_s=lifetime_s)

    def _mint(self, key: Key, role: str, lifetime_s: float) -> HeldToken:
        event_id, user_id, room_id = key
        app = mint_app_token(
            access_key=self._settings.hms_access_key,
            secret=self._settings.hms_secret,
            room_id=room_id,
            user_id=user_id,
            role=self.hms_role(role),
            ttl_s=lifetime_s,
            now=self._clock(),
        )
        return HeldToken(event_id, user_id, room_id, app.token, app.jti, float(app.exp))

    async def _renew(self, key: Key, held: HeldToken | None, *, role: str, lifetime_s: float) -> HeldToken:
        new = self._mint(key, role, lifetime_s)
        winner = await self._store.swap_token(new, replaces=held.jti if held else None)
        if winner.jti == new.jti:
            self._metrics.tokens_minted.inc()
            if held is not None:
                await self._events.incr_counter(key[0], "tokens_refreshed")
        return winner

    # ------------------------------------------------------------------ holding and pushing

    def hold(self, conn: Connection, key: Key, token: HeldToken, *, role: str, lifetime_s: float) -> None:
        """`conn` was sent `token`: keep it fresh from now on."""
        self._holders[key].add(conn)
        self._keys_of[conn.conn_id].add(key)
        self._roles[key] = role
        self._lifetimes[key] = lifetime_s
        local = self._local.get(key)
        if local is None or local.jti != token.jti or key not in self._timers_by_key:
            self._local[key] = token
            self._schedule(key, token)

    def release(self, conn: Connection) -> None:
        """The socket closed: stop refreshing what only it held."""
        for key in self._keys_of.pop(conn.conn_id, ()):
            self._drop_holder(conn, key)

    def release_key(self, conn: Connection, key: Key) -> None:
        self._keys_of[conn.conn_id].discard(key)
        self._drop_holder(conn, key)

    def _drop_holder(self, conn: Connection, key: Key) -> None:
        conns = self._holders.get(key)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                self._forget(key)

    def _forget(self, key: Key) -> None:
        self._holders.pop(key, None)
        self._local.pop(key, None)
        self._lifetimes.pop(key, None)
        self._roles.pop(key, None)
        timer = self._timers_by_key.pop(key, None)
        if timer is not None:
            timer.cancel()

    def _schedule(self, key: Key, token: HeldToken) -> None:
        old = self._timers_by_key.pop(key, None)
        if old is not None:
            old.cancel()
        when = refresh_at(token, self._lifetimes[key], self._rng)
        self._timers_by_key[key] = self._timers.call_at(when, lambda: self._spawn(self._refresh(key)))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._spawn_task(coro, "token refresh")

    async def _refresh(self, key: Key) -> None:
        self._timers_by_key.pop(key, None)
        if not self._holders.get(key):
            return
        local = self._local.get(key)
        try:
            held = await self._store.get_token(*key)
            if held is None or local is None or held.jti == local.jti:
                held = await self._renew(key, held, role=self._roles[key], lifetime_s=self._lifetimes[key])
        except Exception:
            log.exception("token refresh for %s failed; retrying in 5 s", key)
            self._metrics.token_refresh_errors.inc()
            self._timers_by_key[key] = self._timers.call_at(
                self._clock() + 5, lambda: self._spawn(self._refresh(key))
            )
            return
        if not self._holders.get(key):
            return
        self._local[key] = held
        for conn in list(self._holders[key]):
            self.push(conn, held)
        self._schedule(key, held)

    def push(self, conn: Connection, token: HeldToken) -> None:
        data = {"room_id": token.room_id, "hms_token": token.token, "token_exp": int(token.exp)}
        ack = TokenAck(((token.room_id, token.jti, token.exp),))
        if conn.send(Outbound("token.refresh", data, ack_key=ack)):
            self._metrics.token_refreshes_sent.inc()
            self._resend_later(conn, token)

    def _resend_later(self, conn: Connection, token: HeldToken) -> None:
        lead = refresh_lead(self._lifetimes.get((token.event_id, token.user_id, token.room_id), 3600))
        delay = min(10.0, max(1.0, lead / 4))

        def check() -> None:
            if conn.state is not ConnectionState.OPEN:
                return
            acked = conn.tokens.get(token.room_id)
            current = self._local.get((token.event_id, token.user_id, token.room_id))
            if (acked is None or acked[0] != token.jti) and current is not None and current.jti == token.jti:
                self._metrics.token_resends.inc()
                self.push(conn, token)

        self._timers.call_at(self._clock() + delay, check)

    # ------------------------------------------------------------------ acks

    def acked(self, conn: Connection, ack: object) -> None:
        """A client applied a `room.assign` or `token.refresh`: record it and the margin left."""
        if not isinstance(ack, TokenAck):
            return
        now = self._clock()
        for room_id, jti, exp in ack.tokens:
            previous = conn.tokens.get(room_id)
            if previous is not None and previous[0] == jti:
                continue
            if previous is not None:
                self._metrics.token_refreshes_acked.inc()
                self._metrics.token_margin.observe(previous[1] - now)
            conn.tokens[room_id] = (jti, exp)
