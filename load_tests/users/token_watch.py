"""Client side of the `tokens` scenario: what a lean client does with the 100ms tokens it is sent.

Each client given a `TokenHolder` keeps, per room, the newest token it holds; for every
`room.assign` and `token.refresh` it decodes the JWT's claims (no signature check), counts a
mismatch if `exp` differs from `token_exp` (or `room_id` from the message's), and answers
`ack {id}` at once (the client sends it). A refresh carrying a newer token records the margin:
seconds left on the held token when the new one arrived (the ack leaves in the same call).

The worker's `TokenWatch` shares one `TokenLog` between its clients and, once started, checks
every second every open client's newest token against the clock: a client whose newest token
has expired counts one expired client-second (the goal is none).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import orjson

TOKEN_TYPES = frozenset({"room.assign", "token.refresh"})


def jwt_claims(token: object) -> dict[str, Any]:
    """The claims of a JWT, decoded without verifying it; {} if it is not one."""
    if not isinstance(token, str) or token.count(".") != 2:
        return {}
    payload = token.split(".")[1]
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


class TokenLog:
    """What all token-holding clients of one worker received and sent."""

    def __init__(self) -> None:
        self.assigns = 0
        self.refreshes = 0
        self.new_tokens = 0  # a refresh with a token other than (and not older than) the held one
        self.repeats = 0  # the held token pushed again (a resend)
        self.stale = 0  # a token older than the held one
        self.acks = 0
        self.exp_mismatch = 0
        self.room_mismatch = 0
        self.refresh_times: list[float] = []  # when each token.refresh reached the client
        self.refresh_stamps: list[float] = []  # its `ts`: when the hub wrote it (epoch s)
        self.margins: list[float] = []
        self.checks = 0
        self.checked_client_s = 0
        self.expired_client_s = 0
        self.tokenless_client_s = 0
        self.min_left_s = math.inf
        self.expired_samples: list[tuple[float, int]] = []  # (time, clients expired) of the first bad checks


class TokenHolder:
    """One client's newest token per room (room_id -> (exp, token)) and its refresh count."""

    __slots__ = ("log", "newest", "refreshes")

    def __init__(self, log: TokenLog) -> None:
        self.log = log
        self.newest: dict[str, tuple[int, str]] = {}
        self.refreshes = 0

    def receive(self, kind: str, message: dict[str, Any], now: float) -> int | None:
        """Record a `room.assign` or `token.refresh`; the message id to ack (None: nothing to ack)."""
        log = self.log
        data = message.get("data") or {}
        entries = (data.get("rooms") or []) if "rooms" in data else [data]
        refresh = kind == "token.refresh"
        if refresh:
            log.refreshes += 1
            self.refreshes += 1
            log.refresh_times.append(now)
            stamp = message.get("ts")
            if isinstance(stamp, int):
                log.refresh_stamps.append(stamp / 1000)
        else:
            log.assigns += 1
        for entry in entries:
            room, token, exp = entry.get("room_id"), entry.get("hms_token"), entry.get("token_exp")
            if not isinstance(exp, int) or not isinstance(token, str):
                log.exp_mismatch += 1
                continue
            claims = jwt_claims(token)
            if claims.get("exp") != exp:
                log.exp_mismatch += 1
            if claims.get("room_id") != room:
                log.room_mismatch += 1
            held = self.newest.get(room)
            if held is not None and token == held[1]:
                log.repeats += 1
            elif held is not None and exp < held[0]:
                log.stale += 1
            else:
                if held is not None:
                    log.margins.append(held[0] - now)
                    log.new_tokens += refresh
                self.newest[room] = (exp, token)
        msg_id = message.get("id")
        return msg_id if isinstance(msg_id, int) else None


class HasTokens(Protocol):
    tokens: TokenHolder | None

    @property
    def is_open(self) -> bool: ...


class TokenWatch:
    """Per worker: the shared log, the once-a-second expiry check, the replies to the main process."""

    def __init__(self, clients: Callable[[], Sequence[HasTokens]]) -> None:
        self.log = TokenLog()
        self._clients = clients
        self._task: asyncio.Task[None] | None = None

    def holder(self) -> TokenHolder:
        return TokenHolder(self.log)

    def check(self, now: float) -> None:
        log = self.log
        expired = 0
        for client in self._clients():
            holder = client.tokens
            if holder is None or not client.is_open:
                continue
            log.checked_client_s += 1
            if not holder.newest:
                log.tokenless_client_s += 1
                continue
            left = min(exp for exp, _ in holder.newest.values()) - now
            log.min_left_s = min(log.min_left_s, left)
            expired += left <= 0
        log.checks += 1
        log.expired_client_s += expired
        if expired and len(log.expired_samples) < 100:
            log.expired_samples.append((round(now, 3), expired))

    async def _loop(self) -> None:
        started = time.monotonic()
        beat = 0
        while True:
            beat += 1
            await asyncio.sleep(max(0.0, started + beat - time.monotonic()))
            self.check(time.time())

    async def start(self) -> dict[str, Any]:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())
        return {"started": time.time()}

    async def report(self) -> dict[str, Any]:
        """Stop the check; everything recorded (times and margins in full, for the main process)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        log = self.log
        holders = [c.tokens for c in self._clients() if c.tokens is not None]
        return {
            **{k: v for k, v in vars(log).items() if k not in ("refresh_times", "refresh_stamps", "margins")},
            "min_left_s": None if math.isinf(log.min_left_s) else round(log.min_left_s, 3),
            "refresh_times": log.refresh_times,
            "refresh_stamps": log.refresh_stamps,
            "margins": log.margins,
            "per_client_refreshes": [h.refreshes for h in holders],
            "rooms": sorted({room for h in holders for room in h.newest}),
            "clients_open": sum(1 for c in self._clients() if c.tokens is not None and c.is_open),
        }

    async def sample(self, count: int) -> list[str]:
        """The newest token of `count` clients spread evenly over this worker's open clients."""
        held = [c.tokens for c in self._clients() if c.tokens is not None and c.is_open and c.tokens.newest]
        if not held or count < 1:
            return []
        step = max(1, len(held) // count)
        return [max(h.newest.values())[1] for h in held[::step][:count]]  # type: ignore[union-attr]
