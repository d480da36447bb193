"""Allocation, applied: the planner's decisions carried out against the store and 100ms.

One writer per event at a time, on any node: a pass takes the event's lock (with a
fencing token), reads the event into an `EventState`, asks the pure planner, creates
the rooms it asks for through 100ms, and saves the outcome in one fenced write; a
writer whose lock was taken over meanwhile writes nothing. Requests that arrive while
a pass runs mark the event dirty, so a join storm costs a few passes, not one per
candidate. After a save the affected users are told through `notify` (the hub sends
`room.assign`, rosters and alerts to their sockets, on whichever node they are).

Room names are `{prefix}-{event}-{seq}` with a per-event sequence from the store:
unique, so a create retried by the REST client (an upsert by name at 100ms, contract
§2.2) never makes two rooms.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
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
    plan,
)
from server.store.base import Store
from server.store.records import EventConfig, RoomRecord, UserRecord

log = logging.getLogger("proctorhub.allocation.service")

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9.\-:_]")
LOCK_TTL_S = 15.0
LOCK_RETRY_S = 0.02
MAX_GATHER_S = 0.2
MAX_ROOM_ROUNDS = 3
"""Create rooms and plan again at most this often in one pass."""


class RoomFactory(Protocol):
    async def create_room(self, name: str, description: str) -> str:
        """Create (or find, by name) a 100ms room; its id."""

    async def disable_room(self, room_id: str) -> None: ...


class NoRoom(Exception):
    """No room could be found or made for a candidate; the message says why."""


class UnknownEvent(NoRoom):
    """Sessions may name an event the hub was never told about: presence works, rooms are not made
    (a made-up event id in a validly signed token must not create 100ms rooms)."""


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def room_name(prefix: str, event_id: str, seq: int) -> str:
    return f"{prefix}-{_NAME_UNSAFE.sub('_', event_id)}-{seq}"


@dataclass(frozen=True)
class Outcome:
    """What one saved pass changed, for the hub to tell the users concerned."""

    event_id: str
    placed: tuple[str, ...] = ()
    proctors: tuple[str, ...] = ()
    shortage: Shortage | None = None
    shortage_changed: bool = False
    rooms_created: tuple[RoomRecord, ...] = ()


@dataclass
class _EventWork:
    dirty: bool = False
    task: asyncio.Task[None] | None = None
    last_pass_s: float = 0.0
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


def _capacity(event: EventConfig) -> Capacity:
    return Capacity(
        room_size=event.room_size,
        proctors_per_room=event.proctors_per_room,
        proctor_load=event.proctor_load,
        expected_candidates=event.expected_candidates,
    )


def build_state(
    event: EventConfig,
    rooms: list[RoomRecord],
    members: dict[str, list[str]],
    document: dict[str, Any],
    users: list[UserRecord],
    now: float,
) -> EventState:
    """The planner's view of an event, from what the store keeps."""
    meta: dict[str, dict[str, Any]] = document.get("rooms", {})
    room_states = [
        RoomState(
            r.room_id,
            open=meta.get(r.room_id, {}).get("open", True),
            candidates=frozenset(members.get(r.room_id, ())),
            proctors=frozenset(meta.get(r.room_id, {}).get("proctors", ())),
            unwatched_since=meta.get(r.room_id, {}).get("unwatched_since"),
            watched_since=meta.get(r.room_id, {}).get("watched_since"),
        )
        for r in rooms
    ]
    candidates = [CandidateState(u.user_id, u.presence, u.room_id) for u in users if u.role == "candidate"]
    proctors = [ProctorState(u.user_id, u.presence) for u in users if u.role == "proctor"]
    return EventState.build(_capacity(event), room_states, candidates, proctors, now)


def document_of(state: EventState, shortage: Shortage | None) -> dict[str, Any]:
    rooms = {
        r.room_id: {
            "open": r.open,
            "proctors": sorted(r.proctors),
            "unwatched_since": r.unwatched_since,
            "watched_since": r.watched_since,
        }
        for r in state.rooms
    }
    report = None
    if shortage is not None:
        report = {
            "proctors": shortage.proctors_present,
            "rooms": shortage.rooms_needing,
            "unwatched": shortage.rooms_unwatched,
        }
    return {"rooms": rooms, "shortage": report}


class AllocationService:
    def __init__(
        self,
        store: Store,
        factory: RoomFactory,
        *,
        prefix: str,
        owner: str,
        clock: Callable[[], float],
        notify: Callable[[Outcome], Awaitable[None]],
        counted: Callable[[str], None] = lambda what: None,
    ) -> None:
        self._store = store
        self._factory = factory
        self._prefix = prefix
        self._owner = owner
        self._clock = clock
        self._notify = notify
        self._work: dict[str, _EventWork] = {}
        self._counted = counted
        """Told "pass" and "lock_wait" as they happen (the hub's metrics)."""

    async def event(self, event_id: str) -> EventConfig:
        event = await self._store.events.get_event(event_id)
        if event is None:
            raise UnknownEvent(f"event {event_id!r} is not configured: create it with POST /api/v1/events")
        return event

    # ------------------------------------------------------------------ requests

    def request(self, event_id: str) -> asyncio.Future[None]:
        """Plan the event soon; the future resolves after the next pass that saw this request."""
        work = self._work.setdefault(event_id, _EventWork())
        work.dirty = True
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.add_done_callback(_retrieve)  # callers that do not wait must not leave a warning behind
        work.waiters.append(done)
        if work.task is None or work.task.done():
            work.task = asyncio.get_running_loop().create_task(self._drain(event_id, work))
        return done

    async def _drain(self, event_id: str, work: _EventWork) -> None:
        while work.dirty:
            if work.last_pass_s > 0:
                # Let requests gather for as long as the last pass took: under a storm a pass costs
                # O(event) to read and plan, so passes take at most half of the node's time.
                await asyncio.sleep(min(work.last_pass_s, MAX_GATHER_S))
            work.dirty = False
            waiters, work.waiters = work.waiters, []
            started = time.monotonic()
            try:
                await self._locked_pass(event_id)
            except Exception as exc:
                log.exception("allocation pass for %s failed", event_id)
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(NoRoom(f"allocation of {event_id!r} failed: {exc}"))
                continue
            finally:
                work.last_pass_s = time.monotonic() - started
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        work.last_pass_s = 0.0  # a quiet event: the next request is planned at once

    async def _locked_pass(self, event_id: str) -> None:
        name = f"alloc:{event_id}"
        while (
            fence := await self._store.locks.acquire_lock(
                name, self._owner, now=self._clock(), ttl_s=LOCK_TTL_S
            )
        ) is None:
            self._counted("lock_wait")
            await asyncio.sleep(LOCK_RETRY_S)
        try:
            outcome = await self._pass(event_id, fence)
        finally:
            await self._store.locks.release_lock(name, self._owner)
        if outcome is not None:
            await self._notify(outcome)

    # ------------------------------------------------------------------ one pass

    async def _read(
        self, event: EventConfig, event_id: str
    ) -> tuple[EventState, dict[str, Any], list[RoomRecord]]:
        store = self._store
        rooms = await store.allocation.list_rooms(event_id)
        document = await store.allocation.load_allocation(event_id)
        state = build_state(
            event,
            rooms,
            await store.allocation.room_members(event_id),
            document,
            await store.presence.list_users(event_id),
            self._clock(),
        )
        return state, document, rooms

    async def _pass(self, event_id: str, fence: int) -> Outcome | None:
        self._counted("pass")
        try:
            event = await self.event(event_id)
        except UnknownEvent:
            return None
        state, document, _ = await self._read(event, event_id)
        decided = plan(state)
        created: list[RoomRecord] = []
        for _ in range(MAX_ROOM_ROUNDS):
            if not decided.rooms_to_create:
                break
            created += await self._create_rooms(event_id, decided.rooms_to_create)
            state, document, _ = await self._read(event, event_id)
            decided = plan(state)
        await self._disable(decided)
        return await self._save(event_id, fence, state, decided, document, created)

    async def _create_rooms(self, event_id: str, count: int) -> list[RoomRecord]:
        made = []
        for _ in range(count):
            seq = await self._store.allocation.next_room_seq(event_id)
            name = room_name(self._prefix, event_id, seq)
            room_id = await self._factory.create_room(name, f"proctorhub event {event_id}")
            room = RoomRecord(event_id, room_id, name, created_at=self._clock())
            await self._store.allocation.add_room(room)
            made.append(room)
            log.info("room %s (%s) added to event %s", name, room_id, event_id)
        return made

    async def _disable(self, decided: Plan) -> None:
        for room_id in decided.rooms_to_disable:
            try:
                await self._factory.disable_room(room_id)
            except Exception as exc:  # the room stays disabled in our plan; 100ms refuses nothing worse
                log.warning("could not disable room %s at 100ms: %s", room_id, exc)

    async def _save(
        self,
        event_id: str,
        fence: int,
        state: EventState,
        decided: Plan,
        document: dict[str, Any],
        created: list[RoomRecord],
    ) -> Outcome | None:
        after = apply(state, decided)
        new_document = document_of(after, decided.shortage)
        moved_from = [
            (cid, old)
            for cid, rid in decided.placements
            if (old := state.candidates[cid].room_id) is not None and old != rid
        ]
        if new_document == document and not decided.placements and not decided.releases and not created:
            return None
        saved = await self._store.allocation.save_allocation(
            event_id,
            fence=fence,
            document=new_document,
            seat=list(decided.placements),
            unseat=list(decided.releases) + moved_from,
        )
        if not saved:
            log.warning("allocation pass for %s lost its lock before saving; planning again", event_id)
            self.request(event_id)
            return None
        return Outcome(
            event_id,
            placed=tuple(cid for cid, _ in decided.placements),
            proctors=tuple(decided.proctor_rooms),
            shortage=decided.shortage,
            shortage_changed=new_document.get("shortage") != document.get("shortage"),
            rooms_created=tuple(created),
        )

    # ------------------------------------------------------------------ reads

    async def room_of(self, event_id: str, room_id: str) -> RoomRecord:
        for room in await self._store.allocation.list_rooms(event_id):
            if room.room_id == room_id:
                return room
        raise NoRoom(f"room {room_id!r} of event {event_id!r} is not in the store")

    async def proctor_rooms(self, event_id: str, proctor_id: str) -> list[RoomRecord]:
        document = await self._store.allocation.load_allocation(event_id)
        meta = document.get("rooms", {})
        rooms = await self._store.allocation.list_rooms(event_id)
        return [r for r in rooms if proctor_id in meta.get(r.room_id, {}).get("proctors", ())]

    async def allocation(self, event_id: str) -> dict[str, Any]:
        """The allocation as the HTTP API shows it."""
        rooms = await self._store.allocation.list_rooms(event_id)
        members = await self._store.allocation.room_members(event_id)
        document = await self._store.allocation.load_allocation(event_id)
        meta = document.get("rooms", {})
        return {
            "event_id": event_id,
            "rooms": [
                {
                    "room_id": r.room_id,
                    "room_name": r.name,
                    "open": meta.get(r.room_id, {}).get("open", True),
                    "candidates": members.get(r.room_id, []),
                    "proctors": meta.get(r.room_id, {}).get("proctors", []),
                }
                for r in rooms
            ],
            "shortage": document.get("shortage"),
        }
