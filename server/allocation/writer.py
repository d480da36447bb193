"""The single writer of one event's allocation: its state in memory, its decisions fenced in the store.

The node that holds the event's lease (`alloc:{event}`, a lock it renews) keeps the event's rooms,
seats and room metas in memory, loaded once when it took the lease. Every decision is made here and
written with the lease's fence, so a writer that lost its lease (it stalled, another node took over)
writes nothing, and nothing is decided twice across nodes.

Two kinds of work, one at a time, in one loop:

- joins: arrivals gathered while the previous write was in flight, seated together with the
  planner's `place_joins` (O(rooms) for the batch, whatever the event's size) and written in one
  round trip: the batch's seats and the metas of the rooms it opened;
- passes: the planner's full `plan`, for what needs the whole event (a proctor came or went past
  its grace, a candidate finished, a capacity change, rotation in a shortage, a rebalance). The
  users come from the node's snapshot of the event (patched from announcements, not read again).

Rooms the planner asks for are created in the background (100ms REST calls never hold up a write);
joiners who found no seat wait for them.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from server.allocation.planner import (
    CandidateState,
    Capacity,
    EventState,
    Plan,
    ProctorState,
    RoomState,
    Shortage,
    apply,
    place_joins,
    plan,
)
from server.background import Background
from server.store.allocation import KEEP
from server.store.base import Store
from server.store.records import EventConfig, RoomRecord, UserRecord

log = logging.getLogger("proctorhub.allocation.writer")

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9.\-:_]")
MAX_GATHER_S = 0.2
"""A full pass waits at most this long for more requests to gather (as long as the last one took)."""
ROOM_RETRY_S = (0.5, 1.0, 2.0, 5.0, 10.0)


class RoomFactory(Protocol):
    async def create_room(self, name: str, description: str) -> str:
        """Create (or find, by name) a 100ms room; its id."""

    async def disable_room(self, room_id: str) -> None: ...


class UserFeed(Protocol):
    """The users of an event as this node knows them (the hub's snapshots)."""

    async def users(self, event_id: str) -> list[UserRecord]: ...


class NoRoom(Exception):
    """No room could be found or made for a candidate; the message says why."""


class UnknownEvent(NoRoom):
    """Sessions may name an event the hub was never told about: presence works, rooms are not made
    (a made-up event id in a validly signed token must not create 100ms rooms)."""


class LeaseLost(NoRoom):
    """This node's fence was overtaken: another node writes the event now."""


def room_name(prefix: str, event_id: str, seq: int) -> str:
    return f"{prefix}-{_NAME_UNSAFE.sub('_', event_id)}-{seq}"


def capacity(event: EventConfig) -> Capacity:
    return Capacity(
        room_size=event.room_size,
        proctors_per_room=event.proctors_per_room,
        proctor_load=event.proctor_load,
        expected_candidates=event.expected_candidates,
    )


@dataclass(frozen=True)
class Outcome:
    """What one write changed, for the hub to tell the users concerned."""

    event_id: str
    placed: tuple[str, ...] = ()
    proctors: tuple[str, ...] = ()
    shortage: Shortage | None = None
    shortage_changed: bool = False
    rooms_created: tuple[RoomRecord, ...] = ()
    records: tuple[UserRecord, ...] = ()
    """The seated candidates' records as the write left them in the store."""
    placed_asked: bool = False
    """The placed candidates asked for their seats and were answered: their sockets need no note."""


def _meta(room: RoomState) -> dict[str, Any]:
    return {
        "open": room.open,
        "proctors": sorted(room.proctors),
        "unwatched_since": room.unwatched_since,
        "watched_since": room.watched_since,
    }


def _report(shortage: Shortage | None) -> dict[str, int] | None:
    if shortage is None:
        return None
    return {
        "proctors": shortage.proctors_present,
        "rooms": shortage.rooms_needing,
        "unwatched": shortage.rooms_unwatched,
    }


@dataclass
class _Join:
    futures: list[asyncio.Future[str]] = field(default_factory=list)


class EventWriter:
    def __init__(
        self,
        event: EventConfig,
        fence: int,
        *,
        store: Store,
        factory: RoomFactory,
        feed: UserFeed,
        prefix: str,
        clock: Callable[[], float],
        notify: Callable[[Outcome], Awaitable[None]],
        background: Background,
        counted: Callable[[str], None] = lambda what: None,
    ) -> None:
        self.event = event
        self.fence = fence
        self._store = store
        self._factory = factory
        self._feed = feed
        self._prefix = prefix
        self._clock = clock
        self._notify = notify
        self._background = background
        self._counted = counted
        self._records: list[RoomRecord] = []
        self._rooms: dict[str, RoomState] = {}
        self._seat_of: dict[str, str] = {}
        self._candidates: dict[str, CandidateState] = {}
        self._proctors: dict[str, ProctorState] = {}
        self._shortage: dict[str, Any] | None = None
        self._joins: dict[str, _Join] = {}
        self._waiting: dict[str, _Join] = {}
        """Joiners the last batch could not seat: they wait for the rooms being made."""
        self._pass_waiters: list[asyncio.Future[None]] = []
        self._in_write: list[asyncio.Future[Any]] = []
        """The waiters of the write in progress: taken out of the queues, still owed an answer."""
        self._dirty = False
        self._last_pass_s = 0.0
        self._wake = asyncio.Event()
        self._creating: asyncio.Task[None] | None = None
        self._outcomes: deque[Outcome] = deque()
        self._telling: asyncio.Task[None] | None = None
        self._to_create = 0
        self.lost = False
        self._failure: Exception | None = None
        """Why the writer stopped: what a request arriving after that is told at once."""

    @property
    def event_id(self) -> str:
        return self.event.event_id

    # ------------------------------------------------------------------ loading

    async def load(self) -> None:
        """Read the event once: rooms, seats, metas and users (O(event), when the lease is taken)."""
        store, event_id = self._store, self.event_id
        records = await store.allocation.list_rooms(event_id)
        members = await store.allocation.room_members(event_id)
        document = await store.allocation.load_allocation(event_id)
        metas: dict[str, dict[str, Any]] = document.get("rooms", {})
        self._shortage = document.get("shortage")
        self._records = list(records)
        for record in records:
            meta = metas.get(record.room_id, {})
            seats = frozenset(members.get(record.room_id, ()))
            self._rooms[record.room_id] = RoomState(
                record.room_id,
                open=meta.get("open", True),
                candidates=seats,
                proctors=frozenset(meta.get("proctors", ())),
                unwatched_since=meta.get("unwatched_since"),
                watched_since=meta.get("watched_since"),
            )
            for candidate_id in seats:
                self._seat_of[candidate_id] = record.room_id
        await self._refresh_users()

    async def _refresh_users(self) -> None:
        users = await self._feed.users(self.event_id)
        self._candidates = {
            u.user_id: CandidateState(u.user_id, u.presence, self._seat_of.get(u.user_id, u.room_id))
            for u in users
            if u.role == "candidate"
        }
        self._proctors = {
            u.user_id: ProctorState(u.user_id, u.presence) for u in users if u.role == "proctor"
        }

    def _state(self) -> EventState:
        return EventState(
            capacity(self.event),
            tuple(self._rooms[r.room_id] for r in self._records),
            self._candidates,
            self._proctors,
            self._clock(),
        )

    # ------------------------------------------------------------------ requests

    def seat(self, candidate_id: str) -> asyncio.Future[str]:
        """The candidate's room, once a write has seated it (at once if it already has a seat)."""
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        if self._refused(done):
            return done
        room = self._seat_of.get(candidate_id)
        if room is not None and self._rooms[room].open:
            done.set_result(room)
            return done
        self._joins.setdefault(candidate_id, _Join()).futures.append(done)
        self._wake.set()
        return done

    def request_pass(self) -> asyncio.Future[None]:
        """Plan the whole event soon; resolves after the pass that saw this request."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._refused(done):
            return done
        self._pass_waiters.append(done)
        self._dirty = True
        self._wake.set()
        return done

    def _refused(self, done: asyncio.Future[Any]) -> bool:
        """A stopped writer answers at once: a request that picked it just before it stopped (the
        lease moved meanwhile) would otherwise wait its whole deadline for a loop that has ended."""
        if not self.lost:
            return False
        done.set_exception(self._failure or LeaseLost(f"the allocation of {self.event_id!r} moved"))
        return True

    def proctor_rooms(self, proctor_id: str) -> list[RoomRecord]:
        return [r for r in self._records if proctor_id in self._rooms[r.room_id].proctors]

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        """Joins first, then a pass when one is due; one write at a time, until the lease is lost."""
        try:
            while not self.lost:
                if self._joins:
                    await self._write_joins()
                elif self._dirty:
                    await self._gather()
                    if not self._joins:
                        await self._write_pass()
                else:
                    self._wake.clear()
                    await self._wake.wait()
        except LeaseLost:
            return
        except Exception as exc:  # a bug: stop writing; the next request loads the event afresh
            log.exception("the allocation writer of %s failed; it stops", self.event_id)
            self.fail_all(NoRoom(f"the allocation of {self.event_id!r} failed: {exc}"))

    async def _gather(self) -> None:
        """Under a storm a pass costs O(event): let requests gather for as long as the last one took."""
        if self._last_pass_s <= 0:
            return
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), min(self._last_pass_s, MAX_GATHER_S))
        except TimeoutError:
            return

    def fail_all(self, error: Exception) -> None:
        """The writer stops (lease lost, node stopping): every waiter is told to ask again."""
        self.lost = True
        self._failure = error
        self._wake.set()
        for join in (*self._joins.values(), *self._waiting.values()):
            for future in join.futures:
                if not future.done():
                    future.set_exception(error)
        for waiter in (*self._pass_waiters, *self._in_write):
            if not waiter.done():
                waiter.set_exception(error)
        self._joins.clear()
        self._waiting.clear()
        self._pass_waiters.clear()
        if self._creating is not None:
            self._creating.cancel()

    # ------------------------------------------------------------------ joins

    async def _write_joins(self) -> None:
        batch, self._joins = self._joins, {}
        self._in_write = [future for join in batch.values() for future in join.futures]
        try:
            await self._seat_batch(batch)
        finally:
            self._in_write = []

    async def _seat_batch(self, batch: dict[str, _Join]) -> None:
        for candidate_id in batch:
            room = self._seat_of.get(candidate_id)
            self._candidates[candidate_id] = CandidateState(candidate_id, "online", room)
        decided = place_joins(self._state(), batch)
        opened = self._opened(decided)
        report = _report(decided.shortage) if decided.shortage is not None else KEEP
        records: list[UserRecord] = []
        if decided.placements or opened:
            records = await self._commit(decided.placements, opened, report, unseat=[])
            self._apply_joins(decided, opened)
        for candidate_id, room_id in decided.placements:
            self._resolve(batch.pop(candidate_id), room_id)
        if decided.placements or opened:
            self._tell(decided, records, report, asked=True)
        for candidate_id, join in batch.items():
            room = self._seat_of.get(candidate_id)
            if room is not None:
                self._resolve(join, room)  # seated already (a second tab, a retried request)
            else:
                self._waiting.setdefault(candidate_id, _Join()).futures.extend(join.futures)
        if decided.rooms_to_create:
            self._create(decided.rooms_to_create)

    def _opened(self, decided: Plan) -> dict[str, RoomState]:
        """The rooms whose meta the batch changes: those it opened (first seat, maybe a proctor)."""
        now = self._clock()
        watchers: dict[str, set[str]] = {}
        for proctor_id, rooms in decided.proctor_rooms.items():
            for room_id in rooms - {r.room_id for r in self.proctor_rooms(proctor_id)}:
                watchers.setdefault(room_id, set()).add(proctor_id)
        changed: dict[str, RoomState] = {}
        for _, room_id in decided.placements:
            room = changed.get(room_id) or self._rooms[room_id]
            if not room.candidates and room_id not in changed:
                proctors = room.proctors | watchers.get(room_id, set())
                watched = any(
                    (p := self._proctors.get(pid)) is not None and p.presence in ("online", "reconnecting")
                    for pid in proctors
                )
                room = RoomState(
                    room_id,
                    open=room.open,
                    candidates=room.candidates,
                    proctors=frozenset(proctors),
                    unwatched_since=None if watched else now,
                    watched_since=now if watched else None,
                )
                changed[room_id] = room
        return changed

    def _apply_joins(self, decided: Plan, opened: dict[str, RoomState]) -> None:
        self._rooms.update(opened)
        seated: dict[str, set[str]] = {}
        for candidate_id, room_id in decided.placements:
            seated.setdefault(room_id, set()).add(candidate_id)
            self._seat_of[candidate_id] = room_id
            self._candidates[candidate_id] = CandidateState(candidate_id, "online", room_id)
        for room_id, joined in seated.items():
            room = self._rooms[room_id]
            self._rooms[room_id] = RoomState(
                room_id,
                open=room.open,
                candidates=room.candidates | joined,
                proctors=room.proctors,
                unwatched_since=room.unwatched_since,
                watched_since=room.watched_since,
            )

    @staticmethod
    def _resolve(join: _Join, room_id: str) -> None:
        for future in join.futures:
            if not future.done():
                future.set_result(room_id)

    # ------------------------------------------------------------------ full passes

    async def _write_pass(self) -> None:
        self._dirty = False
        waiters, self._pass_waiters = self._pass_waiters, []
        self._in_write = list(waiters)
        try:
            await self._pass(waiters)
        finally:
            self._in_write = []

    async def _pass(self, waiters: list[asyncio.Future[None]]) -> None:
        started = asyncio.get_running_loop().time()
        self._counted("pass")
        try:
            event = await self._store.events.get_event(self.event_id)
            if event is not None:
                self.event = event
            await self._refresh_users()
            before = self._state()
            decided = plan(before)
            await self._disable(decided.rooms_to_disable)
            after = apply(before, decided)
            await self._save_pass(before, after, decided)
            if decided.rooms_to_create:
                self._create(decided.rooms_to_create)
        except LeaseLost:
            raise
        except Exception as exc:
            log.exception("allocation pass for %s failed", self.event_id)
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(NoRoom(f"allocation of {self.event_id!r} failed: {exc}"))
            return
        finally:
            self._last_pass_s = asyncio.get_running_loop().time() - started
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _save_pass(self, before: EventState, after: EventState, decided: Plan) -> None:
        old = {r.room_id: r for r in before.rooms}
        changed = {r.room_id: r for r in after.rooms if _meta(r) != _meta(old[r.room_id])}
        moved_from = [
            (cid, previous)
            for cid, rid in decided.placements
            if (previous := before.candidates[cid].room_id) is not None and previous != rid
        ]
        report = _report(decided.shortage)
        unseat = list(decided.releases) + moved_from
        if not (changed or decided.placements or unseat) and report == self._shortage:
            return
        records = await self._commit(decided.placements, changed, report, unseat=unseat)
        self._rooms.update((r.room_id, r) for r in after.rooms)  # rooms made meanwhile stay
        self._seat_of = {c: r.room_id for r in after.rooms for c in r.candidates}
        for cid, _ in decided.releases:
            self._seat_of.pop(cid, None)
        self._candidates = dict(after.candidates)
        for candidate_id, room_id in decided.placements:
            for pending in (self._waiting, self._joins):
                join = pending.pop(candidate_id, None)
                if join is not None:
                    self._resolve(join, room_id)
        self._tell(decided, records, report)

    async def _disable(self, room_ids: Iterable[str]) -> None:
        for room_id in room_ids:
            try:
                await self._factory.disable_room(room_id)
            except Exception as exc:  # the room stays disabled in our plan; 100ms refuses nothing worse
                log.warning("could not disable room %s at 100ms: %s", room_id, exc)

    # ------------------------------------------------------------------ writing and telling

    async def _commit(
        self,
        placements: Iterable[tuple[str, str]],
        rooms: dict[str, RoomState],
        report: dict[str, Any] | str | None,
        *,
        unseat: list[tuple[str, str]],
    ) -> list[UserRecord]:
        records = await self._store.allocation.save_allocation(
            self.event_id,
            fence=self.fence,
            rooms={room_id: _meta(room) for room_id, room in rooms.items()},
            shortage=report,  # type: ignore[arg-type]
            seat=list(placements),
            unseat=unseat,
        )
        if records is None:
            log.warning("allocation of %s: another node holds the lease now; this one stops", self.event_id)
            error = LeaseLost(f"the allocation of {self.event_id!r} moved to another node")
            self.fail_all(error)
            raise error
        return records

    def _tell(
        self,
        decided: Plan,
        records: list[UserRecord],
        report: dict[str, Any] | str | None,
        *,
        asked: bool = False,
    ) -> None:
        """Queue the outcome for the users concerned; they are told in order, off the writer's path
        (a batch's seats are answered first, and the next batch is written while the last is told)."""
        changed = report != KEEP and report != self._shortage
        if report != KEEP:
            self._shortage = report  # type: ignore[assignment]
        self._outcomes.append(
            Outcome(
                self.event_id,
                placed=tuple(cid for cid, _ in decided.placements),
                proctors=tuple(decided.proctor_rooms),
                shortage=decided.shortage if report != KEEP else None,
                shortage_changed=changed,
                records=tuple(records),
                placed_asked=asked,
            )
        )
        if self._telling is None or self._telling.done():
            self._telling = self._background.spawn(f"tell {self.event_id}", self._tell_all())

    async def _tell_all(self) -> None:
        while self._outcomes:
            outcome = self._outcomes.popleft()
            try:
                await self._notify(outcome)
            except Exception:
                log.exception(
                    "telling the users of %s what changed failed (state sync mends it)", self.event_id
                )

    # ------------------------------------------------------------------ rooms

    def _create(self, count: int) -> None:
        self._to_create = max(self._to_create, count)
        if self._creating is None or self._creating.done():
            self._creating = self._background.spawn(f"rooms for {self.event_id}", self._make_rooms())

    async def _make_rooms(self) -> None:
        attempt = 0
        while self._to_create > 0 and not self.lost and not self._background.stopping:
            try:
                self._records.append(await self._make_room())
                self._to_create -= 1
                attempt = 0
            except Exception as exc:
                delay = ROOM_RETRY_S[min(attempt, len(ROOM_RETRY_S) - 1)]
                log.warning("room for %s not made (%s); again in %g s", self.event_id, exc, delay)
                attempt += 1
                await asyncio.sleep(delay)
                continue
            if self._waiting:  # each new room may seat some of those who wait
                for candidate_id, join in self._waiting.items():
                    self._joins.setdefault(candidate_id, _Join()).futures.extend(join.futures)
                self._waiting.clear()
                self._wake.set()

    async def _make_room(self) -> RoomRecord:
        seq = await self._store.allocation.next_room_seq(self.event_id)
        name = room_name(self._prefix, self.event_id, seq)
        room_id = await self._factory.create_room(name, f"proctorhub event {self.event_id}")
        room = RoomRecord(self.event_id, room_id, name, created_at=self._clock())
        await self._store.allocation.add_room(room)
        self._rooms[room_id] = RoomState(room_id)
        log.info("room %s (%s) added to event %s", name, room_id, self.event_id)
        return room
