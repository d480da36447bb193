"""Simulated proctors (and the admin observer): hold rooms and rosters, count what they see.

A proctor keeps the rooms of its latest `room.assign` (acking it and every `token.refresh`, keeping
its 100ms tokens like a candidate), the candidates of its latest `roster`, and records:
- each `candidate.status` of a candidate in one of its rooms (receive time, presence, video, the
  hub's `ts`): the push latency is matched against what the candidates did (judge/verdict.py);
- each `alert` (open or closed) it is sent, once per (alert_id, state).
Its plan may lose it mid-exam (the network goes; back after a while, or never).

The observer is one admin of the event: it receives every alert of the event and `event.stats`,
whichever proctor watches the room, so detection does not depend on rotation.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from load_tests.scenario.schedule import ProctorPlan
from load_tests.users.sim_user import Shared, SimUser, sleep_until
from load_tests.users.token_watch import TokenHolder


class SimProctor(SimUser):
    role = "proctor"

    def __init__(self, shared: Shared, plan: ProctorPlan) -> None:
        super().__init__(shared, plan.user_id, plan.codec)
        self.plan = plan
        self.tokens = TokenHolder(shared.tokens)
        self.rooms: frozenset[str] = frozenset()
        self.roster: dict[str, str | None] = {}
        self.alerts_seen = 0
        self.handlers = {
            "room.assign": self.on_assign,
            "token.refresh": self.on_refresh,
            "roster": self.on_roster,
            "candidate.status": self.on_status,
            "alert": self.on_alert,
        }

    def _keep(self, kind: str, message: dict[str, Any], now: float) -> None:
        msg_id = self.tokens.receive(kind, message, now)
        if msg_id is not None and self.send("ack", {"id": msg_id}):
            self.shared.tokens.acks += 1

    def on_assign(self, message: dict[str, Any], now: float) -> None:
        rooms = (message.get("data") or {}).get("rooms") or []
        self.rooms = frozenset(r.get("room_id") for r in rooms if isinstance(r, dict))
        self.tokens.newest = {room: held for room, held in self.tokens.newest.items() if room in self.rooms}
        self._keep("room.assign", message, now)

    def on_refresh(self, message: dict[str, Any], now: float) -> None:
        self._keep("token.refresh", message, now)

    def on_roster(self, message: dict[str, Any], now: float) -> None:
        candidates = (message.get("data") or {}).get("candidates") or []
        self.roster = {c.get("candidate_id"): c.get("room_id") for c in candidates if isinstance(c, dict)}
        records = self.shared.records
        records.counts["rosters"] += 1
        stamp = message.get("ts") if isinstance(message.get("ts"), int) else 0
        for c in candidates:  # a roster is how a proctor first learns of candidates in rooms it was given
            if isinstance(c, dict):
                cid = str(c.get("candidate_id"))
                records.deliveries.append((now, cid, str(c.get("presence")), str(c.get("video")), stamp))

    def on_status(self, message: dict[str, Any], now: float) -> None:
        data = message.get("data") or {}
        records = self.shared.records
        records.counts["candidate.status"] += 1
        if data.get("room_id") in self.rooms:
            cid = str(data.get("candidate_id"))
            self.roster[cid] = data.get("room_id")
            stamp = message.get("ts")
            records.deliveries.append(
                (
                    now,
                    cid,
                    str(data.get("presence")),
                    str(data.get("video")),
                    stamp if isinstance(stamp, int) else 0,
                )
            )

    def on_alert(self, message: dict[str, Any], now: float) -> None:
        self.alerts_seen += 1
        self.shared.records.counts["alerts_to_proctors"] += 1
        self.shared.records.alert(message, now)

    @property
    def watching(self) -> frozenset[str]:
        """The rooms this proctor watches now (none while its socket is down)."""
        return self.rooms if self.is_open else frozenset()

    async def run(self) -> None:
        t0, plan = self.shared.t0, self.plan
        await sleep_until(t0 + plan.arrive_s)
        connection = asyncio.get_running_loop().create_task(self.connection_loop())
        if plan.loss is not None:
            at, away = plan.loss
            await sleep_until(t0 + at)
            self.shared.records.injected.append(
                {
                    "kind": "proctor_loss",
                    "proctor_id": self.user_id,
                    "at": time.time(),
                    "away_s": away,
                    "rooms": sorted(self.rooms),
                }
            )
            self.lose_network(away)
        await connection


class Observer(SimUser):
    """One admin of the event: every alert, and the hub's own `event.stats`."""

    role = "admin"

    def __init__(self, shared: Shared) -> None:
        super().__init__(shared, "loadtest-observer", "json")
        self.stats: dict[str, Any] = {}
        self.handlers = {"alert": self.on_alert, "event.stats": self.on_stats}

    def on_alert(self, message: dict[str, Any], now: float) -> None:
        self.shared.records.counts["alerts_to_observer"] += 1
        self.shared.records.alert(message, now)

    def on_stats(self, message: dict[str, Any], now: float) -> None:
        self.stats = message.get("data") or {}

    async def run(self) -> None:
        await sleep_until(self.shared.t0 - 5.0)
        await self.connection_loop()
