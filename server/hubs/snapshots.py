"""The users of an event, read from the store once and shared until something in the event changes.

Rosters and `event.stats` both need every user of an event; read per socket, a storm
of 5,000 admins joining costs 5,000 full reads (the bench saw Redis reply parsing take
40 % of the hub). A snapshot stays valid while no message passed on the event's
watch or admin topic since it was read, which this node sees as long as it has a
socket subscribed there; otherwise it is not kept.
"""

from __future__ import annotations

from collections import defaultdict

from server.hubs.fanout import Fanout, watch_topic
from server.protocol import Outbound
from server.store.base import Store, UserRecord

_CHANGES = ("watch", "admins")


class UserSnapshots:
    def __init__(self, store: Store, fanout: Fanout) -> None:
        self._store = store
        self._fanout = fanout
        self._generation: defaultdict[str, int] = defaultdict(int)
        self._cache: dict[str, tuple[int, int, list[UserRecord]]] = {}
        fanout.observe(self._observe)

    def _observe(self, topic: str, message: Outbound) -> None:
        kind, _, event_id = topic.partition(":")
        if kind in _CHANGES:
            self._generation[event_id] += 1
            self._cache.pop(event_id, None)

    async def users(self, event_id: str) -> list[UserRecord]:
        generation = self._generation[event_id]
        subscription = self._fanout.subscription(watch_topic(event_id))
        cached = self._cache.get(event_id)
        if cached is not None and subscription is not None and cached[:2] == (generation, subscription):
            return cached[2]
        users = await self._store.list_users(event_id)
        unchanged = self._generation[event_id] == generation
        if (
            subscription is not None
            and unchanged
            and self._fanout.subscription(watch_topic(event_id)) == subscription
        ):
            self._cache[event_id] = (generation, subscription, users)
        return users

    def forget(self, event_id: str) -> None:
        self._cache.pop(event_id, None)
