"""Presence in memory: one process, so every transition is atomic by construction."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from typing import Any

from server.store.records import ConnRef, FlagRecord, Transition, Tristate, UserRecord

log = logging.getLogger("proctorhub.store.memory")


class MemoryPresence:
    def __init__(self) -> None:
        self._users: dict[tuple[str, str], UserRecord] = {}
        self._event_users: dict[str, set[str]] = defaultdict(set)
        self._conns: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._node_conns: dict[str, set[ConnRef]] = defaultdict(set)
        self._nodes: dict[str, float] = {}  # node -> liveness deadline
        self._renewed: dict[str, float] = {}  # node -> its last renewal: when a dead node's users left
        self._left_at: dict[tuple[str, str], float] = {}  # a user's latest socket dropped with others left
        self._graces: dict[tuple[str, str], float] = {}
        self._flags: dict[tuple[str, str], list[FlagRecord]] = defaultdict(list)

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
        left_at = self._left_at.get(key, now)
        if changed:  # a dead node's socket is dated early: not before another drop, nor the arrival
            since = max(now, left_at, record.since + 0.001)
            record = record.with_changes(presence="reconnecting", since=since, connections=0)
            self._graces[key] = now + grace_s
        else:
            record = record.with_changes(connections=len(conns))
            self._left_at[key] = max(now, left_at)
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

    async def count_users(self, event_id: str) -> Counter[tuple[str, str]]:
        users = (self._users[(event_id, u)] for u in self._event_users.get(event_id, ()))
        return Counter((r.role, r.presence) for r in users)

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

    def seat(self, event_id: str, user_id: str, room_id: str) -> UserRecord | None:
        """The allocation seated a known user (called inside its save, so in the same step)."""
        record = self._users.get((event_id, user_id))
        if record is None:
            return None
        record = self._users[(event_id, user_id)] = record.with_changes(room_id=room_id)
        return record

    # nodes

    async def node_alive(self, node_id: str, *, now: float, until: float) -> bool:
        registered = node_id in self._nodes
        self._nodes[node_id] = until
        self._renewed[node_id] = now
        return registered

    async def reap_dead_nodes(self, *, now: float, grace_s: float) -> list[UserRecord]:
        moved: list[UserRecord] = []
        for node_id, until in list(self._nodes.items()):
            if until > now:
                continue
            log.warning("node %s missed its liveness deadline; releasing its sockets", node_id)
            renewed = self._renewed.get(node_id, now)  # its users left when it died
            moved += await self._release(node_id, at=renewed, deadline=now + grace_s)
        return moved

    async def release_node(self, node_id: str, *, now: float, grace_s: float) -> list[UserRecord]:
        return await self._release(node_id, at=now, deadline=now + grace_s)

    async def _release(self, node_id: str, *, at: float, deadline: float) -> list[UserRecord]:
        """Drop the node's sockets as of `at`; the users' graces end at `deadline`."""
        self._nodes.pop(node_id, None)
        self._renewed.pop(node_id, None)
        moved: list[UserRecord] = []
        for ref in list(self._node_conns.pop(node_id, ())):
            transition = await self.disconnect(ref, now=at, grace_s=deadline - at)
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
