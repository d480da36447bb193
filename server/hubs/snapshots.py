"""The users of an event, read from the store once and then kept current from the announcements.

Rosters and `event.stats` both need every user of an event; read per socket or per
change, a storm of joins or a busy event costs a full read of the event each time
(the bench saw Redis reply parsing take 40 % of a node, and stats reads alone triple
a two-node broadcast). Every change to a user record is announced on the event's
topics (`candidate.status` on watch, `proctor.status` on admins), so a snapshot is
patched from those messages instead of read again. It is trusted only while this node
stays subscribed to those topics since it was read; otherwise it is read afresh.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from server.hubs.fanout import Fanout
from server.protocol import Outbound
from server.store.presence import PresenceStore
from server.store.records import UserRecord
from server.topics import admin_topic, event_wide, watch_topic


def patched(old: UserRecord | None, event_id: str, message: Outbound) -> UserRecord | None:
    """A user record with an announced status applied (None: the message changes no record)."""
    data: dict[str, Any] = message.data
    if message.type == "candidate.status":
        base = old or UserRecord(event_id, data["candidate_id"], "candidate")
        return base.with_changes(
            name=data.get("name"),
            room_id=data.get("room_id"),
            presence=data["presence"],
            video=data["video"],
            recording=data.get("recording", "unknown"),
            open_alerts=data.get("open_alerts", 0),
            flags=data["flags"],
            since=data["since"] / 1000,
        )
    if message.type == "proctor.status":
        base = old or UserRecord(event_id, data["user_id"], data.get("role", "proctor"))
        return base.with_changes(name=data.get("name"), presence=data["presence"], since=data["since"] / 1000)
    return None


class UserSnapshots:
    def __init__(self, store: PresenceStore, fanout: Fanout) -> None:
        self._store = store
        self._fanout = fanout
        self._generation: defaultdict[str, int] = defaultdict(int)
        self._cache: dict[str, tuple[tuple[int | None, int | None], dict[str, UserRecord]]] = {}
        fanout.observe(self._observe)

    def _subscriptions(self, event_id: str) -> tuple[int | None, int | None]:
        return self._fanout.subscription(watch_topic(event_id)), self._fanout.subscription(
            admin_topic(event_id)
        )

    def _observe(self, topic: str, message: Outbound) -> None:
        event_id = event_wide(topic)
        if event_id is None:
            return
        self._generation[event_id] += 1  # a read in flight may predate this change: do not keep it
        cached = self._cache.get(event_id)
        if cached is None:
            return
        users = cached[1]
        key = message.data.get("candidate_id") or message.data.get("user_id")
        record = patched(users.get(key) if isinstance(key, str) else None, event_id, message)
        if record is not None:
            users[record.user_id] = record

    async def hold(self, event_id: str) -> None:
        """Keep the event's snapshot current on this node even with no socket of it here (a writer)."""
        await self._fanout.retain(watch_topic(event_id))
        await self._fanout.retain(admin_topic(event_id))

    async def release(self, event_id: str) -> None:
        await self._fanout.release(watch_topic(event_id))
        await self._fanout.release(admin_topic(event_id))

    async def users(self, event_id: str) -> list[UserRecord]:
        subscriptions = self._subscriptions(event_id)
        cached = self._cache.get(event_id)
        if cached is not None and subscriptions[0] is not None and cached[0] == subscriptions:
            return list(cached[1].values())
        generation = self._generation[event_id]
        users = await self._store.list_users(event_id)
        unchanged = self._generation[event_id] == generation
        if subscriptions[0] is not None and unchanged and self._subscriptions(event_id) == subscriptions:
            self._cache[event_id] = (subscriptions, {u.user_id: u for u in users})
        else:
            self._cache.pop(event_id, None)
        return users
