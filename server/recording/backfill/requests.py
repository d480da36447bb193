"""The monitor's side of backfill: after each evaluation of a candidate's timeline, tell its page
what to upload (`backfill.request`), what no longer (`backfill.cancel`) and what it may delete
(`backfill.release`); on every (re)connect, the open requests again (state sync). Where the page
says its copy begins (`media.status.local.from`) is kept beside them and bounds what is asked for;
so is when the service next clears uploads not completed in time (its `sweeper`, run after an
evaluation once that time came).

Requests are stored per candidate (store.backfill), so any node decides from the same state; the
decisions are plan.py's. Messages go on the candidate's user topic, reaching each of its sockets.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from server.auth import Session
from server.protocol import Outbound
from server.recording.backfill import plan
from server.recording.backfill.plan import Request, Rules
from server.recording.monitor.intervals import epoch_ms
from server.recording.monitor.timeline import Timeline
from server.store.backfill import LOCAL_FIELD, RELEASE_FIELD, SWEEP_FIELD, BackfillStore
from server.store.timelines import CheckRead
from server.topics import user_topic

Publish = Callable[[str, Outbound], Awaitable[None]]
Sweeper = Callable[[str, str, float], Awaitable[float | None]]
"""Clear a candidate's uploads that were not completed in time; when to look again (service.py)."""


def _dump(request: Request) -> bytes:
    return orjson.dumps(
        {
            "request_id": request.request_id,
            "start": request.start,
            "end": request.end,
            "state": request.state,
            "cause": request.cause,
            "ongoing": request.ongoing,
        }
    )


def _load(raw: bytes) -> Request:
    data: dict[str, Any] = orjson.loads(raw)
    return Request(
        data["request_id"],
        float(data["start"]),
        float(data["end"]),
        data["state"],
        data["cause"],
        data["ongoing"],
    )


def message(request: Request) -> Outbound:
    """`backfill.request` for an open request, `backfill.cancel` for any other."""
    if request.state == "open":
        data = {
            "request_id": request.request_id,
            "from": epoch_ms(request.start),
            "to": epoch_ms(request.end),
        }
        return Outbound("backfill.request", data)
    return Outbound("backfill.cancel", {"request_id": request.request_id})


def release_message(until: float) -> Outbound:
    return Outbound("backfill.release", {"until": epoch_ms(until)})


@dataclass(frozen=True, slots=True)
class Stored:
    """A candidate's backfill bookkeeping as stored."""

    requests: dict[str, Request]
    released: float | None
    """The release point last sent."""
    local_from: float | None
    """Where the page last said its copy begins."""
    sweep_at: float | None
    """When uploads not completed are next looked at (inf: none are waiting)."""


def _stored(raw: dict[str, bytes]) -> Stored:
    """The bookkeeping from its stored hash (`BackfillStore.get_requests`)."""
    raw = dict(raw)
    release, local, sweep = (raw.pop(f, None) for f in (RELEASE_FIELD, LOCAL_FIELD, SWEEP_FIELD))
    return Stored(
        {k: _load(v) for k, v in raw.items()},
        None if release is None else float(release),
        None if local is None else float(local),
        None if sweep is None else float(sweep),
    )


class BackfillRequests:
    def __init__(self, store: BackfillStore, publish: Publish, rules: Rules) -> None:
        self._store = store
        self._publish = publish
        self.rules = rules
        self.sweeper: Sweeper | None = None
        """Called after an evaluation once the time to look at uploads came (`sweep_at`)."""

    async def _read(self, event_id: str, candidate_id: str) -> Stored:
        return _stored(await self._store.get_requests(event_id, candidate_id))

    async def held(self, event_id: str, candidate_id: str) -> tuple[dict[str, Request], float | None]:
        stored = await self._read(event_id, candidate_id)
        return stored.requests, stored.released

    async def sweep_at(self, event_id: str, candidate_id: str, at: float) -> None:
        """Look at the candidate's uploads again by `at` (an earlier time wins)."""
        held = (await self._read(event_id, candidate_id)).sweep_at
        if held is None or at < held:
            await self._store.put_requests(event_id, candidate_id, {SWEEP_FIELD: repr(at).encode()})

    async def local(self, event_id: str, candidate_id: str, local: dict[str, Any], now: float) -> bool:
        """Keep where the page says its copy begins (`local.from`; nothing held: from `now` on), the
        latest report winning; True when it changed (then the candidate is evaluated again)."""
        held_from = now if local.get("from") is None else float(local["from"]) / 1000
        if (await self._read(event_id, candidate_id)).local_from == held_from:
            return False
        await self._store.put_requests(event_id, candidate_id, {LOCAL_FIELD: repr(held_from).encode()})
        return True

    async def request(self, event_id: str, candidate_id: str, request_id: str) -> Request | None:
        return (await self.held(event_id, candidate_id))[0].get(request_id)

    async def evaluated(
        self, event_id: str, candidate_id: str, timeline: Timeline, read: CheckRead, now: float
    ) -> float | None:
        """Decide and send after an evaluation (under the candidate's lock), from the requests its
        check read with the timeline; when to look again."""
        held = _stored(read.backfill)
        stored = held.requests
        result = plan.plan(plan.inputs_of(timeline, now, held.local_from), stored, held.released, self.rules)
        changed = {rid: _dump(r) for rid, r in result.requests.items() if stored.get(rid) != r}
        if result.release is not None:
            changed[RELEASE_FIELD] = repr(result.release).encode()
        sweep = held.sweep_at
        if sweep is not None and sweep <= now and self.sweeper is not None:
            sweep = await self.sweeper(event_id, candidate_id, now)
            changed[SWEEP_FIELD] = repr(float("inf") if sweep is None else sweep).encode()
        await self._store.put_requests(event_id, candidate_id, changed)
        topic = user_topic(event_id, candidate_id)
        for request in result.send:
            await self._publish(topic, message(request))
        if result.release is not None:
            await self._publish(topic, release_message(result.release))
        checks = [c for c in (result.next_check, sweep) if c is not None and c != float("inf")]
        return min(checks, default=None)

    async def state_sync(self, session: Session) -> list[Outbound]:
        """A (re)connecting candidate's open requests, then the release point."""
        if session.role != "candidate":
            return []
        requests, released = await self.held(session.event_id, session.user_id)
        out = [message(r) for r in plan.open_requests(requests.values())]
        if released is not None:
            out.append(release_message(released))
        return out
