"""The hub's side of allocation: run passes when presence changes, tell users what a pass changed.

A pass (on whichever node holds the event's lock) ends in an `Outcome`; this module
publishes a `_seat` note on the user topic of everyone whose assignment changed, so
the nodes holding their sockets send `room.assign` (and a proctor's `roster`), and a
`proctor.shortage` alert on the event's watch topic when the shortage opens or closes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from server.allocation.service import AllocationService, Outcome
from server.background import in_batches
from server.hubs.assignment import Assigner
from server.hubs.connection import Connection, ConnectionState
from server.hubs.fanout import Fanout
from server.hubs.timers import TimerLoop
from server.metrics import HubMetrics
from server.protocol import Outbound
from server.store.records import UserRecord
from server.topics import user_topic, watch_topic

log = logging.getLogger("proctorhub.hubs.seating")

ROOM_RETRY_S = (1.0, 2.0, 5.0, 10.0, 30.0)
SEAT_NOTE = "_seat"
ROTATION_CHECK_S = 30.0
FINISH_REPLAN_S = 2.0
"""Finishes ask for one pass per event at most this often. A finish frees a seat, which no one waits
for (arrivals take free seats without a pass); at an exam's end 5,000 finishes in a minute made a pass
of the whole event after every few of them, a third of the node's time while the last webhooks came."""


Spawn = Callable[[Coroutine[Any, Any, object], str], None]


class Seating:
    def __init__(
        self,
        *,
        fanout: Fanout,
        rooms: AllocationService,
        assigner: Assigner,
        announce: Callable[[UserRecord], Awaitable[None]],
        current: Callable[[str, str], Awaitable[UserRecord | None]],
        timers: TimerLoop,
        clock: Callable[[], float],
        spawn: Spawn,
        metrics: HubMetrics,
    ) -> None:
        self._fanout = fanout
        self.rooms = rooms
        self._assigner = assigner
        self._announce = announce
        self._current = current
        self._timers = timers
        self._clock = clock
        self._spawn = spawn
        self._metrics = metrics
        self._later: set[tuple[str, str]] = set()
        """(event, why) with a pass already asked for later: asking again adds nothing."""
        fanout.observe(self._observe)

    # ------------------------------------------------------------------ triggers

    def presence_changed(self, record: UserRecord) -> None:
        """A proctor came or went (a pass now), a candidate finished (one soon, for all finishes)."""
        if record.role == "proctor":
            self.rooms.request(record.event_id)
        elif record.role == "candidate" and record.presence == "finished":
            self._request_later(record.event_id, "finish", FINISH_REPLAN_S)

    def _request_later(self, event_id: str, why: str, delay_s: float) -> None:
        key = (event_id, why)
        if key in self._later:
            return
        self._later.add(key)

        def ask() -> None:
            self._later.discard(key)
            self.rooms.request(event_id)

        self._timers.call_at(self._clock() + delay_s, ask)

    async def allocated(self, outcome: Outcome) -> None:
        # Statuses first: they also tell every node that its snapshot of the event's users is stale,
        # before the _seat notes make it build rosters from one.
        await in_batches(self._announce_now(record) for record in outcome.records)  # proctors see the room
        note = Outbound(SEAT_NOTE, {})
        await in_batches(
            self._fanout.publish(user_topic(outcome.event_id, user), note)
            for user in (
                (*outcome.placed, *outcome.proctors) if not outcome.placed_asked else outcome.proctors
            )
        )
        if outcome.shortage_changed:
            await self._fanout.publish(watch_topic(outcome.event_id), self._shortage_alert(outcome))
        if outcome.shortage is not None:
            # Fewer proctors than rooms: plan again later so the unwatched rooms take turns.
            self._request_later(outcome.event_id, "rotation", ROTATION_CHECK_S)

    async def _announce_now(self, written: UserRecord) -> None:
        """Announce a user the pass moved as the store holds it now, not as the pass wrote it. An
        outcome is told after its seats are answered: a seated candidate's first video report can be
        stored and announced before then, and watchers keep the last status they hear. Announcing the
        pass's record would turn the video back to unknown."""
        record = await self._current(written.event_id, written.user_id)
        await self._announce(record or written)

    def _shortage_alert(self, outcome: Outcome) -> Outbound:
        shortage = outcome.shortage
        data: dict[str, object] = {
            "alert_id": f"proctor.shortage:{outcome.event_id}",
            "kind": "proctor.shortage",
            "state": "open" if shortage else "closed",
            "candidate_id": None,
            "room_id": None,
            "started_at": int(self._clock() * 1000),
            "detail": {}
            if shortage is None
            else {
                "proctors": shortage.proctors_present,
                "rooms_needing": shortage.rooms_needing,
                "rooms_unwatched": shortage.rooms_unwatched,
            },
        }
        return Outbound("alert", data)

    def _observe(self, topic: str, message: Outbound) -> None:
        if message.type != SEAT_NOTE:
            return
        for conn in list(self._fanout.listeners(topic)):
            self._spawn(self.reassign(conn), "reassign")

    async def reassign(self, conn: Connection) -> None:
        """Push what the socket's user is assigned now. One push runs per socket at a time: a change
        noted while one runs makes it read again when it is done, so the last push a socket gets was
        read after the last change (two pushes at once could land in the other order: the older read,
        slower with more rooms' tokens or a roster to read, last)."""
        session = conn.session
        if conn.state is not ConnectionState.OPEN or session is None:
            return
        if not conn.synced or conn.reassigning:
            conn.stale = True  # the state sync, or the push under way, reads it again when done
            return
        conn.reassigning = True
        try:
            while conn.state is ConnectionState.OPEN:
                conn.stale = False
                if session.role == "candidate":
                    message = await self._assigner.candidate(conn, reason="rebalance", only_if_changed=True)
                    if message is not None:
                        conn.send(message)
                else:
                    await self._push_proctor(conn)
                if not conn.stale:
                    return
        finally:
            conn.reassigning = False

    async def _push_proctor(self, conn: Connection) -> None:
        """The proctor's rooms and roster. Live messages wait while they are read: a candidate's status
        changed during the read would otherwise go out first and the older roster after it, showing
        the proctor the state before the change until the next one."""
        conn.hold()
        messages: list[Outbound] = []
        try:
            messages = await self._assigner.proctor(conn, reason="rebalance", always=True)
            for out in messages:
                conn.send(out, first=True)
        finally:
            conn.unhold(messages)

    # ------------------------------------------------------------------ state sync

    async def assign_or_retry(self, conn: Connection, attempt: int = 0) -> list[Outbound]:
        """A room the hub cannot get now (100ms down, say) is retried and said, never silently skipped."""
        try:
            return await self._assigner.state(conn)
        except Exception as exc:
            log.warning("no room for %s yet (attempt %d): %s", conn.conn_id, attempt + 1, exc)
            self._metrics.room_assign_failures.inc()
            delay = ROOM_RETRY_S[min(attempt, len(ROOM_RETRY_S) - 1)]
            self._timers.call_at(
                self._clock() + delay, lambda: self._spawn(self._retry(conn, attempt + 1), "room retry")
            )
            message = f"no video room yet; retrying in {delay:g} s"
            return [Outbound("error", {"code": "room_unavailable", "message": message})]

    async def _retry(self, conn: Connection, attempt: int) -> None:
        if conn.state is not ConnectionState.OPEN:
            return
        for message in await self.assign_or_retry(conn, attempt):
            conn.send(message)
