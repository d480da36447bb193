"""The recording monitor's state: each candidate's signals and alerts, sessions' members, due checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from server.store.records import UserRecord


@dataclass(frozen=True)
class CheckRead:
    """What a timeline check reads, under the lock it took (`TimelineStore.locked_read`)."""

    fence: int
    signals: list[bytes]
    alerts: dict[str, bytes]
    user: UserRecord | None
    backfill: dict[str, bytes] = field(default_factory=dict)
    """The candidate's browser-backfill bookkeeping (`BackfillStore.get_requests`): the check's hooks
    decide from it, and reading it here saves them a round trip per check."""


class TimelineStore(Protocol):
    async def add_signals(self, event_id: str, candidate_id: str, signals: list[bytes]) -> int:
        """Keep each signal (its canonical JSON) once; how many were new."""

    async def get_signals(self, event_id: str, candidate_id: str) -> list[bytes]: ...
    async def locked_read(
        self, event_id: str, candidate_id: str, *, lock: str, owner: str, now: float, ttl_s: float
    ) -> CheckRead | None:
        """In one step, a check's first round trip: take the lock `lock` for `owner` (as
        `LockStore.acquire_lock` would) and read the candidate's signals, alerts, user record and
        backfill requests;
        None, with nothing read, while another owner holds the lock."""

    async def replace_signals(
        self, event_id: str, candidate_id: str, remove: list[bytes], add: list[bytes]
    ) -> None:
        """In one step: drop `remove`, keep `add` (compaction folds old signals into new ones)."""

    async def put_alerts(self, event_id: str, candidate_id: str, alerts: dict[str, bytes]) -> None: ...
    async def get_alerts(self, event_id: str, candidate_id: str) -> dict[str, bytes]: ...
    async def alerted_candidates(self, event_id: str) -> list[str]: ...
    async def add_session_member(self, session_id: str, event_id: str, candidate_id: str) -> None: ...
    async def session_members(self, session_id: str) -> list[tuple[str, str]]:
        """(event, candidate) of every candidate seen in a 100ms session."""

    async def schedule_check(self, member: str, at: float) -> None:
        """Ask for `member` to be checked at `at` (an earlier request wins)."""

    async def due_checks(self, now: float, *, limit: int = 256) -> list[str]:
        """Checks whose time came, each handed out once cluster-wide."""
