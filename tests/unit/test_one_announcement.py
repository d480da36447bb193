"""PresenceService.one_announcement: the several writes of one change reach watchers as one status."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import pytest

from server.auth import Session
from server.background import Background
from server.config import Settings
from server.hubs.connection import Connection
from server.hubs.fanout import Fanout
from server.hubs.presence import HOLD_MAX_S, PresenceService
from server.metrics import HubMetrics
from server.protocol import Codec
from server.store.memory import MemoryStore
from server.topics import watch_topic

EV = "ev"
log = logging.getLogger("tests.one_announcement")


async def _noop(message: object) -> None:
    return None


def _conn(user: str, role: str, send: Any = _noop) -> Connection:
    conn = Connection(
        f"n/{user}", send, Codec.JSON, queue_size=64, send_timeout_s=1, on_overflow=lambda c: None
    )
    conn.open(Session(user_id=user, event_id=EV, role=role, exp=1e12, iat=0))  # type: ignore[arg-type]
    return conn


class Watcher:
    """An admin socket of the event; the candidates' statuses it got after `mark()`, decoded."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.conn = _conn("a", "admin", self._send)
        self._since = 0

    async def _send(self, message: dict[str, Any]) -> None:
        self.frames.append(orjson.loads(message.get("text") or message["bytes"]))

    async def _drained(self) -> None:
        for _ in range(20):  # let the socket's writer drain its queue
            await asyncio.sleep(0)

    async def mark(self) -> None:
        await self._drained()
        self._since = len(self.frames)

    async def statuses(self) -> list[tuple[str, str, str]]:
        await self._drained()
        return [
            (f["data"]["candidate_id"], f["data"]["video"], f["data"]["recording"])
            for f in self.frames[self._since :]
            if f["type"] == "candidate.status"
        ]


async def _hub() -> tuple[MemoryStore, PresenceService, Watcher]:
    """A store, the presence service, an admin watching, and two candidates online."""
    store = MemoryStore()
    fanout = Fanout(store.pubsub, HubMetrics())
    presence = PresenceService(
        Settings(hub_secret="s" * 32), store.presence, fanout, lambda: 1000.0, Background(log)
    )
    watcher = Watcher()
    await fanout.join(watcher.conn, watch_topic(EV))
    for user in ("c1", "c2"):
        await presence.joined(_conn(user, "candidate"))
    await watcher.mark()
    return store, presence, watcher


async def _recording(store: MemoryStore, presence: PresenceService, user: str, state: str) -> None:
    """What the recording monitor does after a media report: its status, announced if it changed."""
    transition = await store.presence.set_status(EV, user, {"recording": state, "open_alerts": 0})
    if transition is not None and transition.changed:
        await presence.announce(transition.record)


async def test_each_user_is_announced_once_as_its_last_record() -> None:
    store, presence, watcher = await _hub()
    async with presence.one_announcement():
        await presence.video(EV, "c1", "on")
        await _recording(store, presence, "c1", "on")
        await presence.video(EV, "c2", "on")
        assert await watcher.statuses() == []
    assert sorted(await watcher.statuses()) == [("c1", "on", "on"), ("c2", "on", "unknown")]


async def test_outside_the_scope_and_after_it_each_write_is_announced() -> None:
    store, presence, watcher = await _hub()
    spawned: list[asyncio.Task[None]] = []
    async with presence.one_announcement():
        await presence.video(EV, "c1", "on")
        later = asyncio.Event()

        async def after_the_scope() -> None:  # a task started inside inherits the held context
            await later.wait()
            await _recording(store, presence, "c1", "on")

        spawned.append(asyncio.create_task(after_the_scope()))
    assert await watcher.statuses() == [("c1", "on", "unknown")]
    later.set()
    await spawned[0]
    await presence.video(EV, "c1", "off")
    assert await watcher.statuses() == [("c1", "on", "unknown"), ("c1", "on", "on"), ("c1", "off", "on")]


async def test_a_failure_inside_still_announces_what_was_written() -> None:
    _store, presence, watcher = await _hub()
    with pytest.raises(RuntimeError):
        async with presence.one_announcement():
            await presence.video(EV, "c1", "on")
            raise RuntimeError("the monitor failed")
    assert await watcher.statuses() == [("c1", "on", "unknown")]


async def test_a_change_that_takes_long_announces_what_it_holds_after_the_bound() -> None:
    """The monitor may ask 100ms over the network first: the video change does not wait for it."""
    store, presence, watcher = await _hub()
    async with presence.one_announcement():
        await presence.video(EV, "c1", "on")
        await asyncio.sleep(HOLD_MAX_S + 0.05)
        assert await watcher.statuses() == [("c1", "on", "unknown")]
        await _recording(store, presence, "c1", "on")
        assert await watcher.statuses() == [("c1", "on", "unknown"), ("c1", "on", "on")]
    assert await watcher.statuses() == [("c1", "on", "unknown"), ("c1", "on", "on")]
