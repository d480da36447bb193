"""Allocation on every node: find the event's writer, ask it to seat a candidate or plan, read the result.

One node at a time writes an event's allocation (writer.py): the one holding the lease
`alloc:{event}`, a lock it renews every `lease_s / 3`. Any node may take the lease when nobody
holds it, so the first node that needs an event's allocation becomes its writer, and a dead writer's
events pass to the next node that asks once its lease has run out. Requests to a writer on another
node travel on node channels (store pubsub `send`, kind `alloc`) and are answered the same way; a
request that gets no answer in time is sent again to whoever holds the lease then. Seating is
idempotent: a candidate asked for twice gets its one seat.

Costs (store round trips), whatever the event's size:

    a candidate already seated (a reconnect)           0 (its record, read at connect, names its room)
    a new candidate, writer on this node               1 write per batch of arrivals
    a new candidate, writer on another node            2 messages + 1 write per batch
    a full pass                                        1 read of the event's config + 1 write

Room names are `{prefix}-{event}-{seq}` with a per-event sequence from the store: unique, so a create
retried by the REST client (an upsert by name at 100ms) never makes two rooms.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson

from server.allocation.writer import (
    EventWriter,
    LeaseLost,
    NoRoom,
    Outcome,
    RoomFactory,
    UnknownEvent,
    UserFeed,
)
from server.background import Background
from server.store.base import Store
from server.store.records import EventConfig, RoomRecord

__all__ = ["AllocationService", "EventFeed", "NoRoom", "Outcome", "RoomFactory", "UnknownEvent"]

log = logging.getLogger("proctorhub.allocation.service")

KIND = "alloc"
LEASE_S = 3.0
"""How long a silent writer keeps its events: a dead node's joins wait at most about this long."""
ATTEMPT_S = 2.0
"""How long one request waits for its answer before it is sent again (to the lease holder then)."""
SEAT_TIMEOUT_S = 10.0
EVENT_CACHE_S = 2.0
"""An event's config is read again after this long (a PATCH reaches every node within it)."""


class EventFeed(UserFeed, Protocol):
    """The users of an event, kept current on this node while it is held (the writer holds its events)."""

    async def hold(self, event_id: str) -> None: ...
    async def release(self, event_id: str) -> None: ...


class _Retry(Exception):
    """The writer moved or did not answer: ask again."""


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def lease_name(event_id: str) -> str:
    return f"alloc:{event_id}"


class AllocationService:
    def __init__(
        self,
        store: Store,
        factory: RoomFactory,
        *,
        prefix: str,
        node_id: str,
        clock: Callable[[], float],
        notify: Callable[[Outcome], Awaitable[None]],
        feed: EventFeed,
        background: Background,
        counted: Callable[[str], None] = lambda what: None,
        lease_s: float = LEASE_S,
        attempt_s: float = ATTEMPT_S,
    ) -> None:
        self._store = store
        self._factory = factory
        self._prefix = prefix
        self._node_id = node_id
        self._clock = clock
        self._notify = notify
        self._feed = feed
        self._background = background
        self._counted = counted
        self._lease_s = lease_s
        self._attempt_s = attempt_s
        self._writers: dict[str, EventWriter] = {}
        self._taking: dict[str, asyncio.Lock] = {}
        self._owners: dict[str, tuple[str, float]] = {}
        """event -> (the node believed to hold its lease, until when that belief is kept: monotonic)."""
        self._calls: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._events: dict[str, tuple[EventConfig, float]] = {}
        self._room_records: dict[tuple[str, str], RoomRecord] = {}

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._store.pubsub.on_node(KIND, self._on_message)
        self._background.every("allocation leases", self._lease_s / 3, self._renew)

    async def stop(self) -> None:
        """Hand the leases back at once, so another node takes the events without waiting them out."""
        for event_id in list(self._writers):
            await self._abdicate(event_id, NoRoom("this node is stopping; ask again"))

    async def _renew(self) -> None:
        for event_id, writer in list(self._writers.items()):
            ok = not writer.lost and await self._store.locks.renew_lock(
                lease_name(event_id), self._node_id, now=self._clock(), ttl_s=self._lease_s
            )
            if not ok:
                log.warning("lease of %s lost (this node stalled?); another node writes it", event_id)
                await self._abdicate(event_id, LeaseLost(f"the allocation of {event_id!r} moved"))

    async def _abdicate(self, event_id: str, error: Exception) -> None:
        writer = self._writers.pop(event_id, None)
        if writer is None:
            return
        writer.fail_all(error)
        try:
            await self._store.locks.release_lock(lease_name(event_id), self._node_id)
        finally:
            await self._feed.release(event_id)

    # ------------------------------------------------------------------ who writes

    async def _writer_of(self, event_id: str) -> EventWriter | str:
        """This node's writer of the event, or the id of the node that holds its lease."""
        writer = self._writers.get(event_id)
        if writer is not None and not writer.lost:
            return writer
        owner, until = self._owners.get(event_id, ("", 0.0))
        if owner and until > time.monotonic():
            return owner
        owner = await self._store.locks.lock_owner(lease_name(event_id), now=self._clock()) or ""
        if not owner or owner == self._node_id:
            taken = await self._take(event_id)
            if taken is not None:
                return taken
            owner = await self._store.locks.lock_owner(lease_name(event_id), now=self._clock()) or ""
            if not owner:
                raise _Retry(f"the lease of {event_id!r} changed hands; again")
        self._owners[event_id] = (owner, time.monotonic() + self._lease_s)
        return owner

    async def _take(self, event_id: str) -> EventWriter | None:
        """Take the lease if nobody holds it: this node becomes the event's writer (None: another did)."""
        async with self._taking.setdefault(event_id, asyncio.Lock()):
            writer = self._writers.get(event_id)
            if writer is not None and not writer.lost:
                return writer
            name = lease_name(event_id)
            fence = await self._store.locks.acquire_lock(
                name, self._node_id, now=self._clock(), ttl_s=self._lease_s
            )
            if fence is None:
                self._counted("lock_wait")
                return None
            event = await self._store.events.get_event(event_id)
            if event is None:
                await self._store.locks.release_lock(name, self._node_id)
                raise UnknownEvent(
                    f"event {event_id!r} is not configured: create it with POST /api/v1/events"
                )
            await self._feed.hold(event_id)
            writer = EventWriter(
                event,
                fence,
                store=self._store,
                factory=self._factory,
                feed=self._feed,
                prefix=self._prefix,
                clock=self._clock,
                notify=self._notify,
                background=self._background,
                counted=self._counted,
            )
            try:
                await writer.load()
            except BaseException:
                await self._store.locks.release_lock(name, self._node_id)
                await self._feed.release(event_id)
                raise
            self._writers[event_id] = writer
            self._background.spawn(f"allocation writer {event_id}", writer.run())
            log.info("this node writes the allocation of %s (fence %d)", event_id, fence)
            return writer

    # ------------------------------------------------------------------ requests

    async def seat(self, event_id: str, candidate_id: str) -> str:
        """The candidate's room, seated by the event's writer wherever it runs."""
        answer = await self._ask(event_id, {"op": "seat", "candidate": candidate_id}, SEAT_TIMEOUT_S)
        return str(answer["room"])

    def request(self, event_id: str) -> asyncio.Future[None]:
        """Plan the whole event soon; the future resolves after the pass that saw this request."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.add_done_callback(_retrieve)  # callers that do not wait must not leave a warning behind

        async def ask() -> None:
            try:
                await self._ask(event_id, {"op": "plan"}, SEAT_TIMEOUT_S)
            except Exception as exc:
                if not done.done():
                    done.set_exception(exc)
            else:
                if not done.done():
                    done.set_result(None)

        self._background.spawn(f"plan {event_id}", ask())
        return done

    async def _ask(self, event_id: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (left := deadline - loop.time()) > 0:
            try:
                target = await self._writer_of(event_id)
                if isinstance(target, EventWriter):
                    async with asyncio.timeout(left):  # not wait_for: its task costs two loop turns
                        return await self._serve_local(target, body)
                return await self._call(target, {**body, "event": event_id}, min(left, self._attempt_s))
            except (_Retry, LeaseLost, TimeoutError) as exc:
                log.debug("allocation request for %s: %s; asking again", event_id, exc)
                self._owners.pop(event_id, None)
                await asyncio.sleep(min(0.05, max(0.0, deadline - loop.time())))
        raise NoRoom(f"no answer about {event_id!r} within {timeout_s:g} s")

    @staticmethod
    async def _serve_local(writer: EventWriter, body: dict[str, Any]) -> dict[str, Any]:
        if body["op"] == "seat":
            return {"room": await writer.seat(str(body["candidate"]))}
        await writer.request_pass()
        return {}

    # ------------------------------------------------------------------ node messages

    async def _call(self, node: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        call_id = next(self._ids)
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = answer
        try:
            message = {**body, "call": call_id, "from": self._node_id}
            await self._store.pubsub.send(node, KIND, orjson.dumps(message))
            reply = await asyncio.wait_for(answer, timeout_s)
        finally:
            self._calls.pop(call_id, None)
        error = reply.get("error")
        if error == "not_writer":
            raise _Retry(f"{node} does not write {body['event']!r}")
        if error == "unknown_event":
            raise UnknownEvent(str(reply.get("message")))
        if error is not None:
            raise NoRoom(str(reply.get("message") or error))
        return reply

    def _on_message(self, payload: bytes) -> None:
        message = orjson.loads(payload)
        if "reply" in message:
            answer = self._calls.get(message["reply"])
            if answer is not None and not answer.done():
                answer.set_result(message)
            return
        self._background.spawn("allocation request", self._serve(message))

    async def _serve(self, message: dict[str, Any]) -> None:
        event_id = str(message["event"])
        reply: dict[str, Any] = {"reply": message["call"]}
        writer = self._writers.get(event_id)
        if writer is None or writer.lost:
            reply["error"] = "not_writer"
        else:
            try:
                async with asyncio.timeout(SEAT_TIMEOUT_S):
                    reply.update(await self._serve_local(writer, message))
            except LeaseLost:
                reply["error"] = "not_writer"
            except UnknownEvent as exc:
                reply.update(error="unknown_event", message=str(exc))
            except (NoRoom, TimeoutError) as exc:
                reply.update(error="no_room", message=str(exc) or "no seat in time")
        await self._store.pubsub.send(str(message["from"]), KIND, orjson.dumps(reply))

    # ------------------------------------------------------------------ reads

    async def event(self, event_id: str) -> EventConfig:
        cached = self._events.get(event_id)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        event = await self._store.events.get_event(event_id)
        if event is None:
            raise UnknownEvent(f"event {event_id!r} is not configured: create it with POST /api/v1/events")
        self._events[event_id] = (event, time.monotonic() + EVENT_CACHE_S)
        return event

    async def room_of(self, event_id: str, room_id: str) -> RoomRecord:
        """A room's record (rooms never change once made: kept after the first read)."""
        key = (event_id, room_id)
        room = self._room_records.get(key)
        if room is None:
            room = await self._store.allocation.get_room(event_id, room_id)
            if room is None:
                raise NoRoom(f"room {room_id!r} of event {event_id!r} is not in the store")
            self._room_records[key] = room
        return room

    async def proctor_rooms(self, event_id: str, proctor_id: str) -> list[RoomRecord]:
        writer = self._writers.get(event_id)
        if writer is not None and not writer.lost:
            return writer.proctor_rooms(proctor_id)
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
