"""Presence: users and their sockets, the nodes that hold them, and proctors' flags on candidates.

Presence of one user in one event (several tabs are one user):

    offline ──connect──▶ online ──last socket gone──▶ reconnecting ──grace over──▶ offline
                           ▲                               │
                           └──────────connect──────────────┘
    any ──finish──▶ finished   (sticky: reconnecting later does not undo it)

Every transition is decided by the store atomically, so two nodes never both see one. Times are the
callers' `now` (epoch seconds), so the contract suite drives them with a fake clock. Node liveness is
a deadline per node; a node whose deadline passed is reaped by whichever live node claims it first,
and its users go `reconnecting`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Protocol

from server.store.records import ConnRef, FlagRecord, Transition, Tristate, UserRecord


class PresenceStore(Protocol):
    async def connect(self, ref: ConnRef, *, role: str, name: str | None, now: float) -> Transition: ...
    async def disconnect(self, ref: ConnRef, *, now: float, grace_s: float) -> Transition | None:
        """Drop one socket; the last one gone makes an online user `reconnecting` until now+grace_s."""

    async def finish(self, event_id: str, user_id: str, *, now: float) -> Transition | None: ...
    async def expire_graces(self, now: float) -> list[UserRecord]:
        """Users whose grace ran out with no socket back, now `offline`; each returned once, cluster-wide."""

    async def get_user(self, event_id: str, user_id: str) -> UserRecord | None: ...
    async def list_users(self, event_id: str) -> list[UserRecord]: ...
    async def count_users(self, event_id: str) -> Counter[tuple[str, str]]:
        """The event's users by (role, presence), /metrics' figures: counted by the store, not read
        and decoded record by record (5,000 users' records at every scrape cost a busy node 12 %)."""

    async def set_video(self, event_id: str, user_id: str, video: Tristate) -> Transition | None: ...
    async def set_status(self, event_id: str, user_id: str, changes: dict[str, Any]) -> Transition | None:
        """Set some of `video`, `recording`, `open_alerts`; `changed` says whether any differed."""

    async def node_alive(self, node_id: str, *, now: float, until: float) -> bool:
        """Push this node's deadline (renewed `now`); False if it was not registered (new, or reaped
        while it stalled)."""

    async def reap_dead_nodes(self, *, now: float, grace_s: float) -> list[UserRecord]:
        """Claim nodes whose deadline passed and drop their sockets; users who went `reconnecting`.

        A dead node's users left when it died, not when it was found dead: each one's `since` is the
        node's last renewal, or the later moment its last other socket dropped (it had reconnected to
        another node and left that one too, while the dead node's socket still counted)."""

    async def release_node(self, node_id: str, *, now: float, grace_s: float) -> list[UserRecord]:
        """A node that stops drops all its sockets in one step (and leaves the registry); the users who
        went `reconnecting`. Its clients reconnect to other nodes within their grace."""

    async def add_flag(self, flag: FlagRecord) -> UserRecord | None:
        """Append a flag; the candidate's record with its new flag count (None if unknown)."""

    async def list_flags(self, event_id: str, candidate_id: str) -> list[FlagRecord]: ...
