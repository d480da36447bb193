"""The memory store: one process, nothing to install (the embedded default)."""

from __future__ import annotations

import copy
import logging
from collections import defaultdict
from typing import Any

from server.store.base import (
    ConnRef,
    EventConfig,
    FlagRecord,
    HeldToken,
    MessageHandler,
    RoomRecord,
    Transition,
    Tristate,
    UserRecord,
)
from server.store.memory_timelines import MemoryTimelines
from server.store.memory_webhooks import MemoryWebhooks

log = logging.getLogger("proctorhub.store.memory")


class MemoryStore(MemoryTimelines, MemoryWebhooks):
    def __init__(self) -> None:
        self._init_timelines()
        self._init_webhooks()
        self._events: dict[str, EventConfig] = {}
        self._users: dict[tuple[str, str], UserRecord] = {}
        self._event_users: dict[str, set[str]] = defaultdict(set)
        self._conns: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._node_conns: dict[str, set[ConnRef]] = defaultdict(set)
        self._nodes: dict[str, float] = {}
        self._graces: dict[tuple[str, str], float] = {}
        self._flags: dict[tuple[str, str], list[FlagRecord]] = defaultdict(list)
        self._once: dict[str, float] = {}
        self._once_kept = 1024
        self._handlers: dict[str, MessageHandler] = {}
        self._room_seq: dict[str, int] = defaultdict(int)
        self._rooms: dict[str, list[RoomRecord]] = defaultdict(list)
        self._members: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._tokens: dict[tuple[str, str, str], HeldToken] = {}
        self._counters: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._locks: dict[str, tuple[str, float]] = {}
        self._fences: dict[str, int] = defaultdict(int)
        self._allocations: dict[str, dict[str, Any]] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._handlers.clear()

    async def ping(self) -> None:
        return None

    # events

    async def create_event(self, config: EventConfig) -> bool:
        if config.event_id in self._events:
            return False
        self._events[config.event_id] = config
        return True

    async def get_event(self, event_id: str) -> EventConfig | None:
        return self._events.get(event_id)

    async def list_events(self) -> list[EventConfig]:
        return sorted(self._events.values(), key=lambda e: e.event_id)

    async def save_event(self, config: EventConfig) -> None:
        self._events[config.event_id] = config

    # presence

    async def connect(self, ref: ConnRef, *, role: str, name: str | None, now: float) -> Transition:
        key = (ref.event_id, ref.user_id)
        conns = self._conns[key]
        conns.add(ref.conn_id)
        self._node_conns[ref.node_id].add(ref)
        record = self._users.get(key) or UserRecord(ref.event_id, ref.user_id, role, since=now)
        self._event_users[ref.event_id].add(ref.user_id)
        changed = record.presence in ("offline", "reconnecting")
        updates: dict[str, object] = {"role": role, "connections": len(conns)}
        if name is not None:
            updates["name"] = name
        if changed:
            updates.update(presence="online", since=now)
            self._graces.pop(key, None)
        record = self._users[key] = record.with_changes(**updates)
        return Transition(record, changed)

    async def disconnect(self, ref: ConnRef, *, now: float, grace_s: float) -> Transition | None:
        key = (ref.event_id, ref.user_id)
        self._node_conns[ref.node_id].discard(ref)
        conns = self._conns[key]
        conns.discard(ref.conn_id)
        record = self._users.get(key)
        if record is None:
            return None
        changed = not conns and record.presence == "online"
        if changed:
            record = record.with_changes(presence="reconnecting", since=now, connections=0)
            self._graces[key] = now + grace_s
        else:
            record = record.with_changes(connections=len(conns))
        self._users[key] = record
        return Transition(record, changed)

    async def finish(self, event_id: str, user_id: str, *, now: float) -> Transition | None:
        key = (event_id, user_id)
        record = self._users.get(key)
        if record is None:
            return None
        if record.presence == "finished":
            return Transition(record, False)
        self._graces.pop(key, None)
        record = self._users[key] = record.with_changes(presence="finished", since=now)
        return Transition(record, True)

    async def expire_graces(self, now: float) -> list[UserRecord]:
        expired: list[UserRecord] = []
        for key, deadline in list(self._graces.items()):
            if deadline > now:
                continue
            del self._graces[key]
            record = self._users.get(key)
            if record is None or record.presence != "reconnecting" or self._conns[key]:
                continue
            record = self._users[key] = record.with_changes(presence="offline", since=now)
            expired.append(record)
        return expired

    async def get_user(self, event_id: str, user_id: str) -> UserRecord | None:
        return self._users.get((event_id, user_id))

    async def list_users(self, event_id: str) -> list[UserRecord]:
        return [self._users[(event_id, u)] for u in sorted(self._event_users.get(event_id, ()))]

    async def set_video(self, event_id: str, user_id: str, video: Tristate) -> Transition | None:
        return await self.set_status(event_id, user_id, {"video": video})

    async def set_status(self, event_id: str, user_id: str, changes: dict[str, Any]) -> Transition | None:
        key = (event_id, user_id)
        record = self._users.get(key)
        if record is None:
            return None
        if all(getattr(record, name) == value for name, value in changes.items()):
            return Transition(record, False)
        record = self._users[key] = record.with_changes(**changes)
        return Transition(record, True)

    # nodes

    async def node_alive(self, node_id: str, *, until: float) -> bool:
        registered = node_id in self._nodes
        self._nodes[node_id] = until
        return registered

    async def node_gone(self, node_id: str) -> None:
        self._nodes.pop(node_id, None)

    async def reap_dead_nodes(self, *, now: float, grace_s: float) -> list[UserRecord]:
        moved: list[UserRecord] = []
        for node_id, until in list(self._nodes.items()):
            if until > now:
                continue
            del self._nodes[node_id]
            log.warning("node %s missed its liveness deadline; releasing its sockets", node_id)
            for ref in list(self._node_conns.pop(node_id, ())):
                transition = await self.disconnect(ref, now=now, grace_s=grace_s)
                if transition is not None and transition.changed:
                    moved.append(transition.record)
        return moved

    # flags

    async def add_flag(self, flag: FlagRecord) -> UserRecord | None:
        key = (flag.event_id, flag.candidate_id)
        record = self._users.get(key)
        if record is None:
            return None
        self._flags[key].append(flag)
        record = self._users[key] = record.with_changes(flags=len(self._flags[key]))
        return record

    async def list_flags(self, event_id: str, candidate_id: str) -> list[FlagRecord]:
        return list(self._flags.get((event_id, candidate_id), ()))

    # rooms

    async def next_room_seq(self, event_id: str) -> int:
        self._room_seq[event_id] += 1
        return self._room_seq[event_id]

    async def add_room(self, room: RoomRecord) -> None:
        rooms = self._rooms[room.event_id]
        self._index_room(room.room_id, room.event_id)
        if all(r.room_id != room.room_id for r in rooms):
            rooms.append(room)

    async def list_rooms(self, event_id: str) -> list[RoomRecord]:
        return list(self._rooms.get(event_id, ()))

    async def place_candidate(self, event_id: str, user_id: str, *, room_size: int) -> str | None:
        key = (event_id, user_id)
        record = self._users.get(key)
        if record is None:
            return None
        if record.room_id is not None:
            return record.room_id
        for room in self._rooms.get(event_id, ()):
            members = self._members[(event_id, room.room_id)]
            if len(members) < room_size:
                members.add(user_id)
                self._users[key] = record.with_changes(room_id=room.room_id)
                return room.room_id
        return None

    async def room_members(self, event_id: str) -> dict[str, list[str]]:
        rooms = self._rooms.get(event_id, ())
        return {r.room_id: sorted(self._members.get((event_id, r.room_id), ())) for r in rooms}

    # allocation

    async def acquire_lock(self, name: str, owner: str, *, now: float, ttl_s: float) -> int | None:
        held = self._locks.get(name)
        if held is not None and held[0] != owner and held[1] > now:
            return None
        self._locks[name] = (owner, now + ttl_s)
        self._fences[name] += 1
        return self._fences[name]

    async def release_lock(self, name: str, owner: str) -> None:
        held = self._locks.get(name)
        if held is not None and held[0] == owner:
            del self._locks[name]

    async def load_allocation(self, event_id: str) -> dict[str, Any]:
        return copy.deepcopy(self._allocations.get(event_id, {}))

    async def save_allocation(
        self,
        event_id: str,
        *,
        fence: int,
        document: dict[str, Any],
        seat: list[tuple[str, str]],
        unseat: list[tuple[str, str]],
    ) -> bool:
        if fence != self._fences[f"alloc:{event_id}"]:
            return False
        for candidate_id, room_id in unseat:
            self._members[(event_id, room_id)].discard(candidate_id)
        for candidate_id, room_id in seat:
            self._members[(event_id, room_id)].add(candidate_id)
            record = self._users.get((event_id, candidate_id))
            if record is not None:
                self._users[(event_id, candidate_id)] = record.with_changes(room_id=room_id)
        self._allocations[event_id] = copy.deepcopy(document)
        return True

    # tokens

    async def get_token(self, event_id: str, user_id: str, room_id: str) -> HeldToken | None:
        return self._tokens.get((event_id, user_id, room_id))

    async def swap_token(self, new: HeldToken, *, replaces: str | None) -> HeldToken:
        key = (new.event_id, new.user_id, new.room_id)
        held = self._tokens.get(key)
        if held is not None and held.jti != replaces:
            return held
        self._tokens[key] = new
        return new

    # counters

    async def incr_counter(self, event_id: str, name: str, by: int = 1) -> int:
        self._counters[event_id][name] += by
        return self._counters[event_id][name]

    async def get_counters(self, event_id: str) -> dict[str, int]:
        return dict(self._counters.get(event_id, {}))

    # dedupe

    async def once(self, key: str, *, now: float, ttl_s: float) -> bool:
        until = self._once.get(key)
        if until is not None and until > now:
            return False
        self._once[key] = now + ttl_s
        return True

    async def seen(self, keys: list[str], *, now: float) -> list[bool]:
        return [self._once.get(key, now) > now for key in keys]

    async def mark_seen(self, keys: list[str], *, now: float, ttl_s: float) -> None:
        for key in keys:
            self._once[key] = now + ttl_s
        if len(self._once) > 2 * self._once_kept:  # forget expired keys now and then, as Redis's PX does
            self._once = {k: until for k, until in self._once.items() if until > now}
            self._once_kept = max(len(self._once), 1024)

    # cross-node messages: one process, so delivery is a direct call

    async def publish(self, topic: str, payload: bytes) -> None:
        handler = self._handlers.get(topic)
        if handler is not None:
            handler(topic, payload)

    async def subscribe(self, topic: str, handler: MessageHandler) -> None:
        self._handlers[topic] = handler

    async def unsubscribe(self, topic: str) -> None:
        self._handlers.pop(topic, None)
