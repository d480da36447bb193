"""The recording monitor's state in memory: signals, alerts, sessions and due checks."""

from __future__ import annotations

import heapq
from collections import defaultdict

from server.store.memory.backfill import MemoryBackfill
from server.store.memory.kept import all_kept, kept
from server.store.memory.locks import MemoryLocks
from server.store.memory.presence import MemoryPresence
from server.store.timelines import CheckRead


class MemoryTimelines:
    def __init__(self, presence: MemoryPresence, locks: MemoryLocks, backfill: MemoryBackfill) -> None:
        self._presence = presence
        self._locks = locks
        self._backfill = backfill
        self._signals: dict[tuple[str, str], set[bytes]] = defaultdict(set)
        self._alerts: dict[tuple[str, str], dict[str, bytes]] = defaultdict(dict)
        self._alerted: dict[str, set[str]] = defaultdict(set)
        self._sessions: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self._due: dict[str, float] = {}
        self._due_heap: list[tuple[float, str]] = []

    async def add_signals(self, event_id: str, candidate_id: str, signals: list[bytes]) -> int:
        held = self._signals[(event_id, candidate_id)]
        before = len(held)
        held.update(all_kept(signals))
        return len(held) - before

    async def get_signals(self, event_id: str, candidate_id: str) -> list[bytes]:
        return list(self._signals.get((event_id, candidate_id), ()))

    async def locked_read(
        self, event_id: str, candidate_id: str, *, lock: str, owner: str, now: float, ttl_s: float
    ) -> CheckRead | None:
        fence = await self._locks.acquire_lock(lock, owner, now=now, ttl_s=ttl_s)
        if fence is None:
            return None
        return CheckRead(
            fence,
            await self.get_signals(event_id, candidate_id),
            await self.get_alerts(event_id, candidate_id),
            await self._presence.get_user(event_id, candidate_id),
            await self._backfill.get_requests(event_id, candidate_id),
        )

    async def replace_signals(
        self, event_id: str, candidate_id: str, remove: list[bytes], add: list[bytes]
    ) -> None:
        held = self._signals[(event_id, candidate_id)]
        held.difference_update(remove)
        held.update(all_kept(add))

    async def put_alerts(self, event_id: str, candidate_id: str, alerts: dict[str, bytes]) -> None:
        if alerts:
            self._alerts[(event_id, candidate_id)].update((k, kept(v)) for k, v in alerts.items())
            self._alerted[event_id].add(candidate_id)

    async def get_alerts(self, event_id: str, candidate_id: str) -> dict[str, bytes]:
        return dict(self._alerts.get((event_id, candidate_id), {}))

    async def alerted_candidates(self, event_id: str) -> list[str]:
        return sorted(self._alerted.get(event_id, ()))

    async def add_session_member(self, session_id: str, event_id: str, candidate_id: str) -> None:
        self._sessions[session_id].add((event_id, candidate_id))

    async def session_members(self, session_id: str) -> list[tuple[str, str]]:
        return sorted(self._sessions.get(session_id, ()))

    async def schedule_check(self, member: str, at: float) -> None:
        held = self._due.get(member)
        if held is None or at < held:
            self._due[member] = at
            heapq.heappush(self._due_heap, (at, member))

    async def due_checks(self, now: float, *, limit: int = 256) -> list[str]:
        out: list[str] = []
        while self._due_heap and self._due_heap[0][0] <= now and len(out) < limit:
            at, member = heapq.heappop(self._due_heap)
            if self._due.get(member) == at:
                del self._due[member]
                out.append(member)
        return out
