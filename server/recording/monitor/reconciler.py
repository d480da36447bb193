"""Ask 100ms what really happened, and feed the answers through the monitor's idempotent path.

100ms retries a webhook three times in about 14 s and then drops it (contract §3.1, §5 item 7),
so a hub outage, or plain loss, can leave a join, a session close or a recording unsaid. The
reconciler reads the sessions, active and finished (peers with `joined_at`/`left_at`), and
recording assets of the event's rooms and turns them into the same keyed facts the webhooks
give, so what was already known is a no-op. It runs before a recording is declared missing,
after a start, and every `interval_s` (on one node at a time).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from server.hms.models import RecordingAsset, Session
from server.recording.intake.envelope import parse_time
from server.recording.monitor.signals import WebhookFact, peer_signal
from server.recording.monitor.timeline import Signal

log = logging.getLogger("proctorhub.recording.reconciler")


class HmsReader(Protocol):
    def list_sessions(
        self, *, room_id: str | None = ..., active: bool | None = ...
    ) -> AsyncIterator[Session]: ...
    def list_recording_assets(
        self, *, room_id: str | None = ..., session_id: str | None = ...
    ) -> AsyncIterator[RecordingAsset]: ...


Feed = Callable[[WebhookFact], Awaitable[None]]


def session_facts(session: Session, candidate_role: str) -> list[WebhookFact]:
    """Joins and leaves of the session's candidates, and its close if it ended."""
    facts = []
    for peer in session.peers.values():
        if peer.role != candidate_role or not peer.user_id:
            continue
        for name, at in (("join", parse_time(peer.joined_at)), ("leave", parse_time(peer.left_at))):
            if at is not None:
                signal = peer_signal(name, peer.id, at, session.room_id, session.id)  # type: ignore[arg-type]
                facts.append(WebhookFact(session.room_id, peer.user_id, signal))
    closed_at = parse_time(session.updated_at) if not session.active else None
    if closed_at is not None:
        close = Signal(
            f"close:{session.id}", closed_at, "closed", room_id=session.room_id, session_id=session.id
        )
        facts.append(WebhookFact(session.room_id, None, close, session_closed=True))
    return facts


def asset_fact(asset: RecordingAsset) -> WebhookFact | None:
    """A per-peer stream recording asset as the `stream.recording.*` fact it stands for."""
    meta = asset.metadata or {}
    peer_id, user_id = meta.get("peer_id"), meta.get("user_id")
    if asset.type != "stream" or not isinstance(peer_id, str) or not isinstance(user_id, str):
        return None
    if asset.status not in ("completed", "failed"):
        return None
    ok = asset.status == "completed"
    at = parse_time(asset.created_at) or 0.0
    signal = Signal(
        f"{'rec' if ok else 'fail'}:{peer_id}:{asset.job_id}",
        at,
        "recorded" if ok else "failed",
        peer_id=peer_id,
        room_id=asset.room_id,
        session_id=asset.session_id,
        duration_s=float(asset.duration or 0),
        size=int(asset.size or 0),
        recording_id=asset.job_id,
        path=asset.path,
        error="" if ok else "failed asset",
    )
    return WebhookFact(asset.room_id, user_id, signal)


@dataclass
class Reconciler:
    hms: HmsReader
    candidate_role: str
    feed: Feed

    async def session_recordings(self, room_id: str, session_id: str) -> int:
        """Feed the recordings 100ms has for one session; how many it had."""
        count = 0
        async for asset in self.hms.list_recording_assets(room_id=room_id, session_id=session_id):
            fact = asset_fact(asset)
            if fact is not None:
                count += 1
                await self.feed(fact)
        return count

    async def room(self, room_id: str) -> None:
        """Feed every session's peers (joins and leaves) and finished sessions' closes, and their
        recordings. Active sessions too: a candidate's leave while a proctor stays in the room keeps
        the session open, and a lost leave must not let the page's word stand (witnesses.py)."""
        for active in (True, False):
            async for session in self.hms.list_sessions(room_id=room_id, active=active):
                for fact in session_facts(session, self.candidate_role):
                    await self.feed(fact)
        async for asset in self.hms.list_recording_assets(room_id=room_id):
            fact = asset_fact(asset)
            if fact is not None:
                await self.feed(fact)

    async def rooms(self, room_ids: list[str], *, concurrency: int = 2) -> None:
        """Every room, two at a time: the node's own work (joins, messages) goes on meanwhile."""
        gate = asyncio.Semaphore(concurrency)

        async def one(room_id: str) -> None:
            async with gate:
                try:
                    await self.room(room_id)
                except Exception as exc:  # one room's failure must not stop the others
                    log.warning("could not reconcile room %s: %s", room_id, exc)

        await asyncio.gather(*(one(r) for r in room_ids))
