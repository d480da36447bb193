"""The users snapshot patched from announcements equals a fresh read of the store, step after step."""

from __future__ import annotations

import asyncio
import logging

from hypothesis import given
from hypothesis import strategies as st

from server.auth import Session
from server.background import Background
from server.config import Settings
from server.hubs.connection import Connection
from server.hubs.fanout import Fanout
from server.hubs.presence import PresenceService
from server.hubs.snapshots import UserSnapshots
from server.metrics import HubMetrics
from server.protocol import Codec
from server.store.memory import MemoryStore
from server.topics import admin_topic, watch_topic

EV = "ev"
USERS = [("c1", "candidate"), ("c2", "candidate"), ("c3", "candidate"), ("p1", "proctor"), ("p2", "proctor")]
steps = st.lists(
    st.tuples(st.sampled_from(["connect", "disconnect", "finish", "video", "expire"]), st.integers(0, 4)),
    max_size=30,
)


async def _noop(message: object) -> None:
    return None


def _conn(n: int, user: str, role: str) -> Connection:
    conn = Connection(
        f"n/{n}", _noop, Codec.JSON, queue_size=64, send_timeout_s=1, on_overflow=lambda c: None
    )
    conn.open(Session(user_id=user, event_id=EV, role=role, exp=1e12, iat=0))  # type: ignore[arg-type]
    return conn


def _view(users: list) -> dict[str, tuple]:
    return {u.user_id: (u.role, u.presence, u.video, u.flags, u.room_id, u.name) for u in users}


async def _run(plan: list[tuple[str, int]]) -> None:
    store = MemoryStore()
    fanout = Fanout(store.pubsub, HubMetrics())
    snapshots = UserSnapshots(store.presence, fanout)
    now = [1000.0]
    presence = PresenceService(
        Settings(hub_secret="s" * 32, presence_grace_s=5),
        store.presence,
        fanout,
        lambda: now[0],
        Background(logging.getLogger("tests.snapshots")),
    )
    admin = _conn(0, "admin", "admin")
    await fanout.join(admin, watch_topic(EV))
    await fanout.join(admin, admin_topic(EV))
    open_conns: dict[str, list[Connection]] = {}
    await snapshots.users(EV)  # read once: from here on it is patched
    for i, (op, who) in enumerate(plan, start=1):
        user, role = USERS[who]
        now[0] += 1
        if op == "connect":
            conn = _conn(i, user, role)
            open_conns.setdefault(user, []).append(conn)
            await presence.joined(conn)
        elif op == "disconnect" and open_conns.get(user):
            await presence.left(open_conns[user].pop())
        elif op == "finish":
            await presence.finished(EV, user)
        elif op == "video" and role == "candidate":  # the hub tracks candidates' video only
            await presence.video(EV, user, "on" if i % 2 else "off")
        elif op == "expire":
            now[0] += 10
            await presence.sweep()
        assert _view(await snapshots.users(EV)) == _view(await store.presence.list_users(EV)), (i, op, user)


@given(steps)
def test_patched_snapshot_matches_the_store(plan: list[tuple[str, int]]) -> None:
    asyncio.run(_run(plan))
