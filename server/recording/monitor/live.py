"""The live recording monitor: signals in, alerts and candidate statuses out, on any node.

Every signal is kept in the store (once per fact), then the candidate's timeline is evaluated
again from all of its signals (kept few: over the budget the oldest toggles are folded into the
intervals they prove, compaction.py), under a per-candidate lock so two nodes never publish from
different views at once. What changed against the stored alerts is published: `alert` to the
proctors of the candidate's room and the event's admins, and `candidate.status` when its
`recording` or `open_alerts` changed. A timeline that will need a look later (a short gap that
may cross the threshold, a recording due after its session closed) asks the store for a due
check, which any node's loop picks up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from server.auth import Session
from server.background import Background, in_batches
from server.metrics import HubMetrics
from server.protocol import Outbound
from server.recording.intake.envelope import Envelope
from server.recording.monitor.alerts import AlertChange, alert_changes, alert_id, alert_key
from server.recording.monitor.compaction import Budget, compact
from server.recording.monitor.reconciler import HmsReader, Reconciler
from server.recording.monitor.signals import (
    WebhookFact,
    media_signal,
    observed_signal,
    presence_signal,
    webhook_fact,
)
from server.recording.monitor.timeline import RECORDING_MISSING, Rules, Signal, Timeline, evaluate
from server.store.base import Store
from server.store.records import UserRecord
from server.store.timelines import CheckRead
from server.topics import admin_topic, user_topic

log = logging.getLogger("proctorhub.recording.monitor")

LOCK_TTL_S = 5.0
DUE_POLL_S = 0.25
DUE_AT_ONCE = 32
FIRST_RECONCILE_S = 60.0
"""The first reconcile after start-up waits this long (or `reconcile_s`, if shorter): it costs three
100ms calls per room, and a node starting (a deploy, the start of an exam) has its sockets to take
first. Nothing is lost meanwhile: webhooks are durable, and a recording is never declared missing
before 100ms was asked about its session."""


Publish = Callable[[str, Outbound], Awaitable[None]]
"""Send a message on a topic, to every node (the hub's fan-out)."""
Announce = Callable[[UserRecord], Awaitable[None]]
"""Tell the event's watchers that a candidate's record changed (the hub's presence service)."""
ProctorRooms = Callable[[str, str], Awaitable[set[str]]]
"""(event, proctor) -> the rooms the proctor watches."""

AlertHook = Callable[[str, list[tuple[dict[str, Any] | None, dict[str, Any]]]], None]
"""Called (event, [(alert as stored before or None, alert now)]) after alerts changed; must not block."""

EvaluatedHook = Callable[[str, str, Timeline, CheckRead, float], Awaitable[float | None]]
"""Called (event, candidate, timeline, what the check read, now) after every evaluation, under the
candidate's lock; returns when the timeline should be looked at again for it (browser backfill's
requests), or None."""

ChangeHook = Callable[[str, str, Timeline], None]
"""Called (event, candidate, timeline) after an evaluation that saw a new recording or changed an
alert: the archive keeps the candidate's folder and manifest current."""


def _member(event_id: str, candidate_id: str) -> str:
    return f"{event_id}\x00{candidate_id}"


@dataclass(frozen=True)
class MonitorLinks:
    """What the monitor needs from the rest of the node, passed in by the app."""

    store: Store
    publish: Publish
    announce: Announce
    proctor_rooms: ProctorRooms
    metrics: HubMetrics
    clock: Callable[[], float]
    node_id: str
    candidate_role: str


class RecordingMonitor:
    def __init__(
        self,
        links: MonitorLinks,
        rules: Rules,
        *,
        hms: HmsReader | None = None,
        reconcile_s: float = 300.0,
        budget: Budget | None = None,
    ) -> None:
        self._links = links
        self._budget = budget or Budget(min_run_s=rules.threshold_s)
        self._observing: dict[tuple[str, str], set[str]] = {}
        """(event, proctor) -> the candidates whose video it has an opinion on (this node's sockets)."""
        self._store = links.store
        self._clock = links.clock
        self.rules = rules
        self._reconciler = None if hms is None else Reconciler(hms, links.candidate_role, self._noted)
        self._reconcile_s = reconcile_s
        self._asked: set[str] = set()
        """Sessions whose recordings were asked of 100ms before declaring one missing (per process)."""
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._room_events: dict[str, str | None] = {}
        self._change_hooks: list[ChangeHook] = []
        self._alert_hooks: list[AlertHook] = []
        self._evaluated_hooks: list[EvaluatedHook] = []
        self._background = Background(log, on_failure=links.metrics.background_failed)

    def on_change(self, hook: ChangeHook) -> None:
        self._change_hooks.append(hook)

    def on_alerts(self, hook: AlertHook) -> None:
        self._alert_hooks.append(hook)

    def on_evaluated(self, hook: EvaluatedHook) -> None:
        self._evaluated_hooks.append(hook)

    # ------------------------------------------------------------------ inputs

    def presence_changed(self, record: UserRecord) -> None:
        """A user's presence changed (on the node that changed it): a candidate's is a timeline signal;
        a proctor who is no longer online stops being a witness of the candidates it watched."""
        if record.role == "candidate":
            signal = presence_signal(record)
            self._background.spawn("presence signal", self.add(record.event_id, record.user_id, [signal]))
        elif record.role == "proctor" and record.presence != "online":
            watched = self._observing.pop((record.event_id, record.user_id), set())
            for candidate_id in sorted(watched):
                self._background.spawn(
                    "observer gone", self.observed(record.event_id, candidate_id, record.user_id, None)
                )

    async def media(self, event_id: str, candidate_id: str, data: dict[str, Any], source: str) -> None:
        await self.add(event_id, candidate_id, [media_signal(data, self._clock(), source)])

    async def observed(self, event_id: str, candidate_id: str, proctor_id: str, video: bool | None) -> None:
        """A proctor's page sees the candidate's video (True), sees none (False), or stopped watching."""
        watched = self._observing.setdefault((event_id, proctor_id), set())
        if video is None:
            watched.discard(candidate_id)
        else:
            watched.add(candidate_id)
        await self.add(event_id, candidate_id, [observed_signal(proctor_id, video, self._clock())])

    async def webhook(self, envelope: Envelope) -> None:
        """The webhook inbox's handler: idempotent, any order; raising means "try again later"."""
        fact = webhook_fact(envelope.type, envelope.data, envelope.timestamp, self._links.candidate_role)
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
        store = self._store
        if fact.session_closed:
            members = [
                c for e, c in await store.timelines.session_members(fact.signal.session_id) if e == event_id
            ]
        else:
            assert fact.user_id is not None
            user = await store.presence.get_user(event_id, fact.user_id)
            if user is None or user.role != "candidate":
                return []
            members = [fact.user_id]
            if fact.signal.kind == "join":
                await store.timelines.add_session_member(fact.signal.session_id, event_id, fact.user_id)
        payload = [_payload(fact.signal)]
        changed = []
        for candidate_id in members:
            if await store.timelines.add_signals(event_id, candidate_id, payload):
                changed.append((event_id, candidate_id, fact.signal.kind == "recorded"))
        return changed

    async def _noted(self, fact: WebhookFact) -> None:
        """A reconciled fact: stored, and its timelines checked by the due loop (we may hold a lock)."""
        for event_id, candidate_id, _ in await self._record(fact):
            await self._store.timelines.schedule_check(_member(event_id, candidate_id), self._clock())

    async def _event_of(self, room_id: str) -> str | None:
        if room_id not in self._room_events:
            event_id = await self._store.allocation.room_event(room_id)
            if event_id is None:
                return None  # not cached: the room may be added later
            self._room_events[room_id] = event_id
        return self._room_events[room_id]

    # ------------------------------------------------------------------ evaluation

    async def add(self, event_id: str, candidate_id: str, signals: list[Signal]) -> None:
        payloads = [_payload(s) for s in signals]
        if await self._store.timelines.add_signals(event_id, candidate_id, payloads):
            recorded = any(s.kind in ("recorded", "backfilled") for s in signals)
            await self.check(event_id, candidate_id, recorded=recorded)

    async def timeline(self, event_id: str, candidate_id: str) -> Timeline:
        return evaluate(await self._signals(event_id, candidate_id), self._clock(), self.rules)

    async def _signals(self, event_id: str, candidate_id: str) -> list[Signal]:
        return _decoded(await self._store.timelines.get_signals(event_id, candidate_id))

    async def _compacted(self, event_id: str, candidate_id: str, signals: list[Signal]) -> Timeline:
        """The candidate's timeline from its `signals`, the oldest toggles folded first when it
        holds more than the budget (called under its lock: one node folds at a time)."""
        change = compact(signals, self._budget) if len(signals) > self._budget.budget else None
        if change is not None:
            await self._store.timelines.replace_signals(
                event_id,
                candidate_id,
                [_payload(s) for s in change.remove],
                [_payload(s) for s in change.add],
            )
            gone = set(change.remove)
            signals = [s for s in signals if s not in gone] + list(change.add)
        return evaluate(signals, self._clock(), self.rules)

    async def check_at(self, event_id: str, candidate_id: str, at: float) -> None:
        """Evaluate one candidate again at `at` (or earlier, if asked for earlier), on any node."""
        await self._store.timelines.schedule_check(_member(event_id, candidate_id), at)

    async def check(self, event_id: str, candidate_id: str, *, recorded: bool = False) -> None:
        """Evaluate one candidate again and publish what changed."""
        store = self._store
        # One evaluation per candidate at a time: locally by an asyncio lock, across nodes by the store's.
        async with self._locks.setdefault((event_id, candidate_id), asyncio.Lock()):
            read = await self._locked_read(event_id, candidate_id)
            if read is None:
                await store.timelines.schedule_check(
                    _member(event_id, candidate_id), self._clock() + DUE_POLL_S
                )
                return
            try:
                timeline, alerts_changed = await self._evaluate_and_publish(event_id, candidate_id, read)
            finally:
                await store.locks.release_lock(_lock_name(event_id, candidate_id), self._owner)
        self._links.metrics.timeline_checks.inc()
        if recorded or alerts_changed:
            for hook in self._change_hooks:
                hook(event_id, candidate_id, timeline)

    @property
    def _owner(self) -> str:
        return self._links.node_id

    async def _locked_read(self, event_id: str, candidate_id: str) -> CheckRead | None:
        """The candidate's lock across nodes and what its check reads, in one store round trip;
        tried for up to two seconds while another node evaluates the candidate."""
        timelines, clock = self._store.timelines, self._clock
        for _ in range(100):
            read = await timelines.locked_read(
                event_id,
                candidate_id,
                lock=_lock_name(event_id, candidate_id),
                owner=self._owner,
                now=clock(),
                ttl_s=LOCK_TTL_S,
            )
            if read is not None:
                return read
            await asyncio.sleep(0.02)
        return None

    async def _evaluate_and_publish(
        self, event_id: str, candidate_id: str, read: CheckRead
    ) -> tuple[Timeline, bool]:
        store = self._store
        timeline = await self._compacted(event_id, candidate_id, _decoded(read.signals))
        stored = {k: orjson.loads(v) for k, v in read.alerts.items()}
        user = read.user
        if await self._ask_before_missing(candidate_id, timeline, stored):
            timeline = await self.timeline(event_id, candidate_id)
        room_id = (user.room_id if user else None) or timeline.room_id
        changes = alert_changes(candidate_id, room_id, timeline, stored)
        if changes:
            await store.timelines.put_alerts(
                event_id, candidate_id, {c.alert["alert_id"]: orjson.dumps(c.alert) for c in changes}
            )
            await self._publish(event_id, room_id, changes)
            for hook in self._alert_hooks:
                hook(event_id, [(stored.get(c.alert["alert_id"]), c.alert) for c in changes])
        open_count = sum(
            1
            for a in {**stored, **{c.alert["alert_id"]: c.alert for c in changes}}.values()
            if a["state"] == "open"
        )
        status = {"recording": timeline.recording_state, "open_alerts": open_count}
        # Only the monitor writes these two fields, under the candidate's lock it holds since the read:
        # when the read record has them already, the write (a Redis round trip) would change nothing.
        if user is None or any(getattr(user, field) != value for field, value in status.items()):
            transition = await store.presence.set_status(event_id, candidate_id, status)
            if transition is not None and transition.changed:
                await self._links.announce(transition.record)
        checks = [timeline.next_check]
        for hook in self._evaluated_hooks:
            checks.append(await hook(event_id, candidate_id, timeline, read, self._clock()))
        due = [c for c in checks if c is not None]
        if due:
            await store.timelines.schedule_check(_member(event_id, candidate_id), min(due))
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
        proctors: list[str] = []
        if room_id:
            proctors = await self._store.allocation.room_proctors(event_id, room_id)
        topics = [admin_topic(event_id), *(user_topic(event_id, p) for p in proctors)]
        for change in changes:
            for message in change.messages():
                for topic in topics:
                    await self._links.publish(topic, message)
                self._links.metrics.alerts.labels(message.data["kind"], message.data["state"]).inc()

    # ------------------------------------------------------------------ reads for the API and state sync

    async def alerts(self, event_id: str, candidate_ids: list[str] | None = None) -> list[dict[str, Any]]:
        store = self._store
        ids = (
            candidate_ids if candidate_ids is not None else await store.timelines.alerted_candidates(event_id)
        )
        found = await asyncio.gather(*(store.timelines.get_alerts(event_id, c) for c in ids))
        alerts = [orjson.loads(raw) for held in found for raw in held.values()]
        return sorted(alerts, key=alert_key)

    async def state_sync(self, session: Session) -> list[Outbound]:
        """After `roster` (proctor) or `event.stats` (admin): the open alerts of what they watch."""
        if session.event_id == "*" or session.role == "candidate":
            return []
        event_id = session.event_id
        alerted = await self._store.timelines.alerted_candidates(event_id)
        if not alerted:
            return []
        if session.role == "proctor":
            rooms = await self._links.proctor_rooms(event_id, session.user_id)
            members = await self._store.allocation.room_members(event_id)
            watched = {c for room in rooms for c in members.get(room, ())}
            alerted = [c for c in alerted if c in watched]
        return [Outbound("alert", a) for a in await self.alerts(event_id, alerted) if a["state"] == "open"]

    # ------------------------------------------------------------------ due checks

    async def start(self) -> None:
        bg = self._background
        bg.every("recording due checks", DUE_POLL_S, self._due_checks)
        if self._reconciler is not None:
            bg.every(
                "recording reconcile",
                self._reconcile_s,
                self._reconcile,
                first_delay_s=min(FIRST_RECONCILE_S, self._reconcile_s),
            )

    async def stop(self) -> None:
        await self._background.stop()

    async def _reconcile(self) -> None:
        """One node at a time asks 100ms about every room of every event (every `reconcile_s`)."""
        store = self._store
        fence = await store.locks.acquire_lock(
            "recording-reconcile", self._owner, now=self._clock(), ttl_s=self._reconcile_s
        )
        if fence is None or self._reconciler is None:
            return
        for event in await store.events.list_events():
            rooms = [r.room_id for r in await store.allocation.list_rooms(event.event_id)]
            await self._reconciler.rooms(rooms)
        self._links.metrics.reconciles.inc()

    async def _due_checks(self) -> None:
        due = await self._store.timelines.due_checks(self._clock())
        # a few dozen at a time: the deadlines of an exam's end fall due together, and hundreds of
        # checks ready at once would make a webhook's check (an alert) wait behind every one of them
        await in_batches((self.check(*m.split("\x00", 1)) for m in due), at_once=DUE_AT_ONCE)


def _decoded(raws: list[bytes]) -> list[Signal]:
    return [Signal.from_dict(orjson.loads(r)) for r in raws]


def _payload(signal: Signal) -> bytes:
    """A signal's stored form: canonical, so the same fact is the same bytes (and can be removed)."""
    return orjson.dumps(signal.to_dict(), option=orjson.OPT_SORT_KEYS)


def _lock_name(event_id: str, candidate_id: str) -> str:
    return f"timeline:{event_id}:{candidate_id}"
