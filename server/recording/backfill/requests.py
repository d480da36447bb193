"""The monitor's side of backfill: after each evaluation of a candidate's timeline, tell its page
what to upload (`backfill.request`), what no longer (`backfill.cancel`) and what it may delete
(`backfill.release`); on every (re)connect, the open requests again (state sync). Where the page
says its copy begins (`media.status.local.from`) is kept beside them and bounds what is asked for.

Requests are stored per candidate (store.backfill), so any node decides from the same state; the
decisions are plan.py's. Messages go on the candidate's user topic, reaching each of its sockets.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from server.auth import Session
from server.protocol import Outbound
from server.recording.backfill import plan
from server.recording.backfill.plan import Request, Rules
from server.recording.monitor.intervals import epoch_ms
from server.recording.monitor.timeline import Timeline
from server.store.backfill import LOCAL_FIELD, RELEASE_FIELD, BackfillStore
from server.topics import user_topic

Publish = Callable[[str, Outbound], Awaitable[None]]


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


class BackfillRequests:
    def __init__(self, store: BackfillStore, publish: Publish, rules: Rules) -> None:
        self._store = store
        self._publish = publish
        self.rules = rules

    async def _read(
        self, event_id: str, candidate_id: str
    ) -> tuple[dict[str, Request], float | None, float | None]:
        """(requests, release point, where the page's copy begins) as stored."""
        raw = await self._store.get_requests(event_id, candidate_id)
        release, local = raw.pop(RELEASE_FIELD, None), raw.pop(LOCAL_FIELD, None)
        requests = {k: _load(v) for k, v in raw.items()}
        return requests, None if release is None else float(release), None if local is None else float(local)

    async def held(self, event_id: str, candidate_id: str) -> tuple[dict[str, Request], float | None]:
        requests, released, _ = await self._read(event_id, candidate_id)
        return requests, released

    async def local(self, event_id: str, candidate_id: str, local: dict[str, Any], now: float) -> bool:
        """Keep where the page says its copy begins (`local.from`; nothing held: from `now` on), the
        latest report winning; True when it changed (then the candidate is evaluated again)."""
        held_from = now if local.get("from") is None else float(local["from"]) / 1000
        _, _, stored = await self._read(event_id, candidate_id)
        if stored == held_from:
            return False
        await self._store.put_requests(event_id, candidate_id, {LOCAL_FIELD: repr(held_from).encode()})
        return True

    async def request(self, event_id: str, candidate_id: str, request_id: str) -> Request | None:
        return (await self.held(event_id, candidate_id))[0].get(request_id)

    async def evaluated(
        self, event_id: str, candidate_id: str, timeline: Timeline, now: float
    ) -> float | None:
        """Decide and send after an evaluation (under the candidate's lock); when to look again."""
        stored, released, local_from = await self._read(event_id, candidate_id)
        result = plan.plan(plan.inputs_of(timeline, now, local_from), stored, released, self.rules)
        changed = {rid: _dump(r) for rid, r in result.requests.items() if stored.get(rid) != r}
        if result.release is not None:
            changed[RELEASE_FIELD] = repr(result.release).encode()
        await self._store.put_requests(event_id, candidate_id, changed)
        topic = user_topic(event_id, candidate_id)
        for request in result.send:
            await self._publish(topic, message(request))
        if result.release is not None:
            await self._publish(topic, release_message(result.release))
        return result.next_check

    async def state_sync(self, session: Session) -> list[Outbound]:
        """A (re)connecting candidate's open requests, then the release point."""
        if session.role != "candidate":
            return []
        requests, released = await self.held(session.event_id, session.user_id)
        out = [message(r) for r in plan.open_requests(requests.values())]
        if released is not None:
            out.append(release_message(released))
        return out
