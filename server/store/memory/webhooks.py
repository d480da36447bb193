"""The webhook inbox in memory: the same queue semantics as the Redis stream, for one process."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Pending:
    consumer: str
    delivered_at: float


def _seq(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


class MemoryWebhooks:
    """Entries live until acked or parked; idle time is measured with `monotonic`."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._wh_seq = 0
        self._wh_entries: dict[str, bytes] = {}
        self._wh_new: deque[str] = deque()
        self._wh_pending: dict[str, _Pending] = {}
        self._wh_dead: list[tuple[str, bytes, str]] = []
        self._wh_arrived: asyncio.Event | None = None
        self._room_names: dict[str, str] = {}
        self._wh_resumed: set[str] = set()
        self._wh_resume: dict[str, int] = {}

    async def append(self, payload: bytes) -> str:
        self._wh_seq += 1
        entry_id = f"{self._wh_seq}-0"
        self._wh_entries[entry_id] = bytes(payload)
        self._wh_new.append(entry_id)
        if self._wh_arrived is not None:
            self._wh_arrived.set()
        return entry_id

    async def claim(
        self, consumer: str, *, count: int, block_s: float, min_idle_s: float
    ) -> list[tuple[str, bytes]]:
        if consumer not in self._wh_resumed:  # as after a restart: what this name still holds
            after = self._wh_resume.get(consumer, 0)
            own = sorted(
                (_seq(i), i)
                for i, p in self._wh_pending.items()
                if p.consumer == consumer and _seq(i) > after
            )[:count]
            if len(own) < count:
                self._wh_resumed.add(consumer)
            elif own:
                self._wh_resume[consumer] = own[-1][0]
            if own:
                return [(i, self._wh_entries[i]) for _, i in own]
        claimed = self._reclaim(consumer, count, min_idle_s)
        if not claimed and not self._wh_new and block_s > 0:
            self._wh_arrived = self._wh_arrived or asyncio.Event()
            self._wh_arrived.clear()
            try:
                await asyncio.wait_for(self._wh_arrived.wait(), block_s)
            except TimeoutError:
                return []
        now = self._monotonic()
        while self._wh_new and len(claimed) < count:
            entry_id = self._wh_new.popleft()
            if entry_id in self._wh_entries:
                self._wh_pending[entry_id] = _Pending(consumer, now)
                claimed.append((entry_id, self._wh_entries[entry_id]))
        return claimed

    def _reclaim(self, consumer: str, count: int, min_idle_s: float) -> list[tuple[str, bytes]]:
        now = self._monotonic()
        claimed: list[tuple[str, bytes]] = []
        for entry_id, pending in self._wh_pending.items():
            if len(claimed) >= count:
                break
            if now - pending.delivered_at >= min_idle_s:
                pending.consumer, pending.delivered_at = consumer, now
                claimed.append((entry_id, self._wh_entries[entry_id]))
        return claimed

    async def ack(self, ids: list[str]) -> None:
        for entry_id in ids:
            self._wh_pending.pop(entry_id, None)
            self._wh_entries.pop(entry_id, None)

    async def backlog(self) -> int:
        return len(self._wh_entries)

    async def park(self, entry_id: str, payload: bytes, *, error: str) -> None:
        self._wh_dead.append((entry_id, bytes(payload), error))
        await self.ack([entry_id])

    async def parked(self) -> list[tuple[str, bytes, str]]:
        return list(self._wh_dead)

    async def remember_room_name(self, room_id: str, name: str) -> None:
        self._room_names[room_id] = name

    async def room_name_of(self, room_id: str) -> str | None:
        return self._room_names.get(room_id)
