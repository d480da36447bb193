"""The live recording monitor: signals in, alerts and candidate statuses out, on any node.

Every signal is kept in the store (once per fact), then the candidate's timeline is evaluated
again from all of its signals, under a per-candidate lock so two nodes never publish from
different views at once. What changed against the stored alerts is published: `alert` to the
proctors of the candidate's room and the event's admins, and `candidate.status` when its
`recording` or `open_alerts` changed. A timeline that will need a look later (a short gap that
may cross the threshold, a recording due after its session closed) asks the store for a due
check, which any node's loop picks up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from server.protocol import Outbound
from server.recording.intake.envelope import Envelope
from server.recording.monitor.alerts import AlertChange, alert_changes, alert_id, alert_key
from server.recording.monitor.reconciler import HmsReader, Reconciler
from server.recording.monitor.signals import WebhookFact, media_signal, presence_signal, webhook_fact
from server.recording.monitor.timeline import RECORDING_MISSING, Rules, Signal, Timeline, evaluate
from server.store.base import UserRecord
from server.topics import admin_topic, user_topic

if TYPE_CHECKING:
    from server.hubs.connection import Connection
    from server.hubs.hub import Hub

log = logging.getLogger("proctorhub.recording.monitor")

LOCK_TTL_S = 5.0
DUE_POLL_S = 0.25


ChangeHook = Callable[[str, str, Timeline], None]
"""Called (event, candidate, timeline) after an evaluation that saw a new recording or changed an
alert: the archive keeps the candidate's folder and manifest current."""


def _member(event_id: str, candidate_id: str) -> str:
    return f"{event_id}\x00{candidate_id}"


class RecordingMonitor:
    def __init__(
        self, hub: Hub, rules: Rules, *, hms: HmsReader | None = None, reconcile_s: float = 300.0
    ) -> None:
        self._hub = hub
        self.rules = rules
        self._reconciler = (
            None if hms is None else Reconciler(hms, hub.settings.hms_candidate_role, self._noted)
        )
        self._reconcile_s = reconcile_s
        self._asked: set[str] = set()
        """Sessions whose recordings were asked of 100ms before declaring one missing (per process)."""
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._room_events: dict[str, str | None] = {}
        self._change_hooks: list[ChangeHook] = []
        self._tasks: list[asyncio.Task[None]] = []
        hub.presence.on_change(self._presence_changed)
        hub.media_observers.append(self.media)
        hub.state_sync.add("alerts", self._state_sync)

    def on_change(self, hook: ChangeHook) -> None:
        self._change_hooks.append(hook)

    # ------------------------------------------------------------------ inputs

    def _presence_changed(self, record: UserRecord) -> None:
        if record.role == "candidate":
            self._hub.spawn(self.add(record.event_id, record.user_id, [presence_signal(record)]))

    async def media(self, event_id: str, candidate_id: str, data: dict[str, Any], source: str) -> None:
        await self.add(event_id, candidate_id, [media_signal(data, self._hub.clock(), source)])

    async def webhook(self, envelope: Envelope) -> None:
        """The webhook inbox's handler: idempotent, any order; raising means "try again later"."""
        fact = webhook_fact(
            envelope.type, envelope.data, envelope.timestamp, self._hub.settings.hms_candidate_role
        )
        if fact is not None:
            await self.fact(fact)

    async def fact(self, fact: WebhookFact) -> None:
        """One fact about a room (from a webhook or the reconciler): stored, then the timelines checked."""
        for event_id, candidate_id, recorded in await self._record(fact):
            await self.check(event_id, candidate_id, recorded=recorded)

    async def _record(self, fact: WebhookFact) -> list[tuple[str, str, bool]]:
        """Store a fact on the timelines it concerns; (event, candidate, is a recording) of changed ones."""
        event_id = await self._event_of(fact.room_id)
        if event_id is None:
            return []  # a room of no event here (another environment's rooms are relayed before this)
        store = self._hub.store
        if fact.session_closed:
            members = [c for e, c in await store.session_members(fact.signal.session_id) if e == event_id]
        else:
            assert fact.user_id is not None
            user = await store.get_user(event_id, fact.user_id)
            if user is None or user.role != "candidate":
                return []
            members = [fact.user_id]
            if fact.signal.kind == "join":
                await store.add_session_member(fact.signal.session_id, event_id, fact.user_id)
        payload = [orjson.dumps(fact.signal.to_dict(), option=orjson.OPT_SORT_KEYS)]
        changed = []
        for candidate_id in members:
            if await store.add_signals(event_id, candidate_id, payload):
                changed.append((event_id, candidate_id, fact.signal.kind == "recorded"))
        return changed

    async def _noted(self, fact: WebhookFact) -> None:
        """A reconciled fact: stored, and its timelines checked by the due loop (we may hold a lock)."""
        for event_id, candidate_id, _ in await self._record(fact):
            await self._hub.store.schedule_check(_member(event_id, candidate_id), self._hub.clock())

    async def _event_of(self, room_id: str) -> str | None:
        if room_id not in self._room_events:
            event_id = await self._hub.store.room_event(room_id)
            if event_id is None:
                return None  # not cached: the room may be added later
            self._room_events[room_id] = event_id
        return self._room_events[room_id]

    # ------------------------------------------------------------------ evaluation

    async def add(self, event_id: str, candidate_id: str, signals: list[Signal]) -> None:
        payloads = [orjson.dumps(s.to_dict(), option=orjson.OPT_SORT_KEYS) for s in signals]
        if await self._hub.store.add_signals(event_id, candidate_id, payloads):
            recorded = any(s.kind == "recorded" for s in signals)
            await self.check(event_id, candidate_id, recorded=recorded)

    async def timeline(self, event_id: str, candidate_id: str) -> Timeline:
        raws = await self._hub.store.get_signals(event_id, candidate_id)
        return evaluate((Signal.from_dict(orjson.loads(r)) for r in raws), self._hub.clock(), self.rules)

    async def check(self, event_id: str, candidate_id: str, *, recorded: bool = False) -> None:
        """Evaluate one candidate again and publish what changed."""
        store = self._hub.store
        # One evaluation per candidate at a time: locally by an asyncio lock, across nodes by the store's.
        async with self._locks.setdefault((event_id, candidate_id), asyncio.Lock()):
            if await self._store_lock(event_id, candidate_id) is None:
                await store.schedule_check(_member(event_id, candidate_id), self._hub.clock() + DUE_POLL_S)
                return
            try:
                timeline, alerts_changed = await self._evaluate_and_publish(event_id, candidate_id)
            finally:
                await store.release_lock(_lock_name(event_id, candidate_id), self._owner)
        self._hub.metrics.timeline_checks.inc()
        if recorded or alerts_changed:
            for hook in self._change_hooks:
                hook(event_id, candidate_id, timeline)

    @property
    def _owner(self) -> str:
        return self._hub.settings.node_id

    async def _store_lock(self, event_id: str, candidate_id: str) -> int | None:
        store, clock = self._hub.store, self._hub.clock
        for _ in range(100):
            fence = await store.acquire_lock(
                _lock_name(event_id, candidate_id), self._owner, now=clock(), ttl_s=LOCK_TTL_S
            )
            if fence is not None:
                return fence
            await asyncio.sleep(0.02)
        return None

    async def _evaluate_and_publish(self, event_id: str, candidate_id: str) -> tuple[Timeline, bool]:
        hub = self._hub
        timeline, held, user = await asyncio.gather(
            self.timeline(event_id, candidate_id),
            hub.store.get_alerts(event_id, candidate_id),
            hub.store.get_user(event_id, candidate_id),
        )
        stored = {k: orjson.loads(v) for k, v in held.items()}
        if await self._ask_before_missing(candidate_id, timeline, stored):
            timeline = await self.timeline(event_id, candidate_id)
        room_id = (user.room_id if user else None) or timeline.room_id
        changes = alert_changes(candidate_id, room_id, timeline, stored)
        if changes:
            await hub.store.put_alerts(
                event_id, candidate_id, {c.alert["alert_id"]: orjson.dumps(c.alert) for c in changes}
            )
            await self._publish(event_id, room_id, changes)
        open_count = sum(
            1
            for a in {**stored, **{c.alert["alert_id"]: c.alert for c in changes}}.values()
            if a["state"] == "open"
        )
        status = {"recording": timeline.recording_state, "open_alerts": open_count}
        transition = await hub.store.set_status(event_id, candidate_id, status)
        if transition is not None and transition.changed:
            await hub.presence.announce(transition.record)
        if timeline.next_check is not None:
            await hub.store.schedule_check(_member(event_id, candidate_id), timeline.next_check)
        return timeline, bool(changes)

    async def _ask_before_missing(
        self, candidate_id: str, timeline: Timeline, stored: dict[str, dict[str, Any]]
    ) -> bool:
        """Before a recording is declared missing, ask 100ms for the session's recordings once."""
        if self._reconciler is None:
            return False
        sessions = {
            (g.room_id, g.session_id)
            for g in timeline.gaps
            if g.kind == RECORDING_MISSING
            and alert_id(candidate_id, g) not in stored
            and g.session_id not in self._asked
        }
        for room_id, session_id in sessions:
            self._asked.add(session_id)
            try:
                await self._reconciler.session_recordings(room_id, session_id)
            except Exception as exc:
                log.warning("could not ask 100ms for the recordings of session %s: %s", session_id, exc)
        return bool(sessions)

    async def _publish(self, event_id: str, room_id: str | None, changes: list[AlertChange]) -> None:
        hub = self._hub
        proctors: list[str] = []
        if room_id:
            document = await hub.store.load_allocation(event_id)
            proctors = list(document.get("rooms", {}).get(room_id, {}).get("proctors", ()))
        topics = [admin_topic(event_id), *(user_topic(event_id, p) for p in proctors)]
        for change in changes:
            for message in change.messages():
                for topic in topics:
                    await hub.fanout.publish(topic, message)
                hub.metrics.alerts.labels(message.data["kind"], message.data["state"]).inc()

    # ------------------------------------------------------------------ reads for the API and state sync

    async def alerts(self, event_id: str, candidate_ids: list[str] | None = None) -> list[dict[str, Any]]:
        store = self._hub.store
        ids = candidate_ids if candidate_ids is not None else await store.alerted_candidates(event_id)
        found = await asyncio.gather(*(store.get_alerts(event_id, c) for c in ids))
        alerts = [orjson.loads(raw) for held in found for raw in held.values()]
        return sorted(alerts, key=alert_key)

    async def _state_sync(self, hub: Hub, conn: Connection) -> list[Outbound]:
        """After `roster` (proctor) or `event.stats` (admin): the open alerts of what they watch."""
        session = conn.session
        if session is None or session.event_id == "*" or session.role == "candidate":
            return []
        event_id = session.event_id
        alerted = await hub.store.alerted_candidates(event_id)
        if not alerted:
            return []
        if session.role == "proctor":
            rooms = {r.room_id for r in await hub.rooms.proctor_rooms(event_id, session.user_id)}
            members = await hub.store.room_members(event_id)
            watched = {c for room in rooms for c in members.get(room, ())}
            alerted = [c for c in alerted if c in watched]
        return [Outbound("alert", a) for a in await self.alerts(event_id, alerted) if a["state"] == "open"]

    # ------------------------------------------------------------------ due checks

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(), name="recording-due-checks")]
        if self._reconciler is not None:
            self._tasks.append(loop.create_task(self._reconcile_loop(), name="recording-reconcile"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _reconcile_loop(self) -> None:
        """Every `reconcile_s` (first soon after start), one node asks 100ms about every room of events."""
        hub = self._hub
        await asyncio.sleep(min(5.0, self._reconcile_s))
        while self._reconciler is not None:
            try:
                fence = await hub.store.acquire_lock(
                    "recording-reconcile", self._owner, now=hub.clock(), ttl_s=self._reconcile_s
                )
                if fence is not None:
                    for event in await hub.store.list_events():
                        rooms = [r.room_id for r in await hub.store.list_rooms(event.event_id)]
                        await self._reconciler.rooms(rooms)
            except (OSError, ConnectionError) as exc:
                log.warning("reconciliation failed (store unreachable?): %s", exc)
            except Exception:
                log.exception("reconciliation failed")
            await asyncio.sleep(self._reconcile_s)

    async def _run(self) -> None:
        while True:
            try:
                due = await self._hub.store.due_checks(self._hub.clock())
                await asyncio.gather(*(self.check(*m.split("\x00", 1)) for m in due))
            except (OSError, ConnectionError) as exc:
                log.warning("recording checks failed (store unreachable?): %s", exc)
            except Exception:
                log.exception("recording checks failed")
            await asyncio.sleep(DUE_POLL_S)


def _lock_name(event_id: str, candidate_id: str) -> str:
    return f"timeline:{event_id}:{candidate_id}"
