"""A simulated candidate: the page's behaviour on the hub and on the 100ms media plane.

On the hub (PROTOCOL.md): `auth`, then `room.assign` (the join latency is auth -> room.assign),
`ack` of every `room.assign` and `token.refresh` at once, keeping the newest 100ms token per room
(token_watch.TokenHolder), `media.status` whenever its media state changes, `finish` at the end.
On the simulator's media plane (docs/simulator.md, /media): join with the token the hub pushed,
publish video, and after a network loss reconnect with the newest token the hub gave on its return
(410: join again). A refused join (expired, wrong room, bad token) is recorded as a failed join,
exactly what 100ms would refuse.

Its plan (schedule.CandidatePlan) adds churn (the network goes: socket and media drop, back after a
while), camera loss (video unpublished for a while) and the finish time.

Its page keeps a local copy of its camera and uploads what the hub asks for (backfill_page.py,
extension E15). After `finish` it keeps its socket open, as the real page does while it holds
video the hub may still ask for (a recording found missing after the sitting): until the hub has
released all it holds with no request open, or for the scenario's drain at most (`keep_open_s`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from load_tests.scenario.schedule import CandidatePlan
from load_tests.users.backfill_page import PageCopy
from load_tests.users.http_lite import HttpError
from load_tests.users.sim_user import Shared, SimUser, sleep_until
from load_tests.users.token_watch import TokenHolder

NONE, JOINED, DISCONNECTED = "none", "joined", "disconnected"
MEDIA_RETRY_S = (3.0, 10.0)  # a media call that got no answer is tried again after this long (uniform)


class SimCandidate(SimUser):
    role = "candidate"

    def __init__(self, shared: Shared, plan: CandidatePlan) -> None:
        super().__init__(shared, plan.user_id, plan.codec)
        self.plan = plan
        self.tokens = TokenHolder(shared.tokens)
        self.room_id: str | None = None
        self.assigned_once = False
        self.finished = False
        self.peer: dict[str, Any] | None = None  # the current 100ms peer (also in records.peers)
        self.peer_state = NONE
        self.video_wanted = True
        self.video_sent: bool | None = None
        self.media_lock = asyncio.Lock()
        self.media_pending = False  # a join failed: try again with the next token
        self._awaiting_assign = False
        self.first_hello: float | None = None
        self.finished_at: float | None = None
        self.churned = False
        self.copy = PageCopy(
            shared,
            plan.user_id,
            self._session_token,
            self._renew_session,
            self._settled,
            lambda: self.offline_until,
        )
        self.handlers = {
            "room.assign": self.on_assign,
            "token.refresh": self.on_refresh,
            "backfill.request": lambda m, _: self.copy.on_request(m.get("data") or {}),
            "backfill.cancel": lambda m, _: self.copy.on_cancel(m.get("data") or {}),
            "backfill.release": lambda m, _: self.copy.on_release(m.get("data") or {}),
        }

    # ---------------------------------------------------------------- hub messages

    def connected(self) -> None:
        if self.finished:
            return  # back only for the uploads: presence stays finished, no seat is given
        self._awaiting_assign = True
        if self.first_hello is None:
            self.first_hello = time.time()
        self.shared.records.actions.append((self.auth_sent, self.user_id, "presence", "online"))

    # ---------------------------------------------------------------- the local copy

    async def _session_token(self) -> str:
        if self._session is None:
            self._session = await self.shared.session_token(self.user_id, self.role)
        return self._session

    def _renew_session(self) -> None:
        self._session = None

    def _settled(self) -> None:
        """Finished and nothing more the hub may ask for: the page may go."""
        if self.finished and not self.stopped:
            self.shared.records.counts["backfill_pages_settled"] += 1
            self.stop(1000)

    def _leave_page(self) -> None:
        """The bound on staying open after the finish ran out (the scenario's drain): the page goes."""
        if not self.stopped:
            self.shared.records.counts["backfill_pages_left_unsettled"] += 1
            self.stop(1000)

    def stop(self, code: int = 1000) -> None:
        super().stop(code)
        self.copy.close()

    def page_summary(self) -> dict[str, Any]:
        """What the page knew, for the report's backfill coverage (judge/backfill.py)."""
        end = self.finished_at or time.time()
        return {
            "sitting": [[self.first_hello, end]] if self.first_hello is not None else [],
            "held": self.copy.held_spans(),
            "churned": self.churned,
            "finished_at": self.finished_at,
        }

    def _keep(self, kind: str, message: dict[str, Any], now: float) -> None:
        msg_id = self.tokens.receive(kind, message, now)
        if msg_id is not None and self.send("ack", {"id": msg_id}):
            self.shared.tokens.acks += 1

    def on_assign(self, message: dict[str, Any], now: float) -> None:
        if self._awaiting_assign:
            self._awaiting_assign = False
            self.shared.records.joins.append((self.auth_sent, now - self.auth_sent, not self.assigned_once))
            self.assigned_once = True
        self._keep("room.assign", message, now)
        room = (message.get("data") or {}).get("room_id")
        if not isinstance(room, str):
            return
        self.shared.records.assigns.append((self.user_id, now, room))
        moved = self.room_id is not None and room != self.room_id
        self.room_id = room
        if moved:
            self.shared.records.counts["candidate_moved"] += 1
        if not self.finished:
            asyncio.get_running_loop().create_task(self.sync_media(moved))

    def on_refresh(self, message: dict[str, Any], now: float) -> None:
        self._keep("token.refresh", message, now)
        if self.media_pending and not self.finished:
            asyncio.get_running_loop().create_task(self.sync_media(False))

    @property
    def leaving(self) -> bool:
        return self.finished or super().leaving

    # ---------------------------------------------------------------- media plane

    def _token(self) -> str | None:
        held = self.tokens.newest.get(self.room_id or "")
        return held[1] if held else None

    def _failed(self, what: str, status: int, answer: Any) -> None:
        held = self.tokens.newest.get(self.room_id or "")
        message = answer.get("message") if isinstance(answer, dict) else str(answer)[:120]
        self.shared.records.media_failures.append(
            {
                "t": time.time(),
                "candidate_id": self.user_id,
                "room_id": self.room_id,
                "call": what,
                "status": status,
                "message": message,
                "token_exp": held[0] if held else None,
            }
        )
        self.media_pending = True
        if (
            status == 0 and not self.finished
        ):  # no answer (the media plane is swamped): try again, as the SDK does
            loop = asyncio.get_running_loop()
            delay = self.shared.rng.uniform(*MEDIA_RETRY_S)
            loop.call_later(delay, lambda: loop.create_task(self.sync_media(False)))

    async def _call(self, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        try:
            return await self.shared.media.post(path, body)
        except HttpError as exc:
            self.shared.records.error(f"media: {exc}")
            return 0, str(exc)

    async def sync_media(self, moved: bool) -> None:
        """Bring the 100ms peer in line with the room and token the hub gave (one change at a time)."""
        async with self.media_lock:
            if self.finished or self.room_id is None:
                return
            if moved and self.peer_state != NONE:
                await self._leave("moved")
            if self.peer_state == DISCONNECTED:
                await self._reconnect()
            elif self.peer_state == NONE:
                await self._join()

    async def _join(self) -> None:
        token = self._token()
        if token is None:
            return
        status, answer = await self._call("/media/join", {"token": token, "user_name": self.user_id})
        if status != 200 or not isinstance(answer, dict):
            self._failed("join", status, answer)
            return
        self.media_pending = False
        self.shared.records.counts["media_joins"] += 1
        self.peer = {
            "peer_id": answer["peer_id"],
            "room_id": answer.get("room_id"),
            "candidate_id": self.user_id,
            "joined_at": time.time(),
            "video": False,
            "left_at": None,
            "left": None,
        }
        self.shared.records.peers.append(self.peer)
        self.peer_state = JOINED
        await self._publish(self.video_wanted)

    async def _reconnect(self) -> None:
        token = self._token()
        if token is None or self.peer is None:
            return
        status, answer = await self._call(f"/media/peers/{self.peer['peer_id']}/reconnect", {"token": token})
        if status == 200:
            self.media_pending = False
            self.peer_state = JOINED
            self.shared.records.counts["media_reconnects"] += 1
            await self._publish(self.video_wanted)
            return
        if status in (403, 410):  # another room's token, or the window passed: a new peer
            self.peer["left"] = "window" if status == 410 else "token does not match peer"
            self.peer["left_at"] = self.peer["left_at"] or time.time()
            self.peer_state = NONE
            await self._join()
            return
        self._failed("reconnect", status, answer)

    async def _publish(self, video: bool) -> None:
        if self.peer is None or self.peer_state != JOINED:
            return
        status, answer = await self._call(
            f"/media/peers/{self.peer['peer_id']}/publish", {"video": video, "audio": True}
        )
        if status != 200:
            self.shared.records.error(f"publish {status}: {str(answer)[:80]}")
            return
        self.peer["video"] = self.peer["video"] or video
        media = {
            "peer_id": self.peer["peer_id"],
            "room_id": self.room_id,
            "joined": True,
            "video": video,
            "audio": True,
        }
        if self.send("media.status", media) and video != self.video_sent:
            # only a change is pushed to proctors: the same state sent again (a media reconnect) is not
            self.video_sent = video
            self.shared.records.actions.append((time.time(), self.user_id, "video", "on" if video else "off"))

    async def _leave(self, why: str) -> None:
        if self.peer is None or self.peer_state == NONE:
            return
        peer, self.peer_state = self.peer, NONE
        await self._call(f"/media/peers/{peer['peer_id']}/leave")
        peer["left_at"], peer["left"] = time.time(), why

    # ---------------------------------------------------------------- the plan

    async def run(self) -> None:
        t0, plan = self.shared.t0, self.plan
        await sleep_until(t0 + plan.arrive_s)
        self.copy.record(time.time())  # the page starts its camera (and recorder) before the hub
        connection = asyncio.get_running_loop().create_task(self.connection_loop())
        steps = [(t0 + at, self._drop, away) for at, away in plan.churn]
        steps += [(t0 + at, self._camera, length) for at, length in plan.camera]
        for at, step, arg in sorted(steps, key=lambda s: s[0]):
            await sleep_until(at)
            await step(arg)
        await sleep_until(t0 + plan.finish_s)
        await self._finish()
        await connection

    def _injected(self, kind: str, length_s: float) -> float:
        """Record a disruption this candidate starts now (for the report's fault accounting)."""
        at = time.time()
        self.shared.records.injected.append(
            {
                "kind": kind,
                "candidate_id": self.user_id,
                "at": at,
                "until": at + length_s,
                "room_id": self.room_id,
                "joined": self.peer_state == JOINED,
            }
        )
        return at

    async def _drop(self, away_s: float) -> None:
        at = self._injected("churn", away_s)
        self.churned = True
        self.shared.records.actions.append((at, self.user_id, "presence", "reconnecting"))
        self.lose_network(away_s)
        async with self.media_lock:
            if self.peer is not None and self.peer_state == JOINED:
                self.peer_state = DISCONNECTED
                await self._call(f"/media/peers/{self.peer['peer_id']}/network-loss")

    async def _camera(self, length_s: float) -> None:
        self._injected("camera", length_s)
        self.video_wanted = False
        self.copy.pause(time.time())  # no camera, nothing recorded
        async with self.media_lock:
            await self._publish(False)
        await asyncio.sleep(length_s)
        self.video_wanted = True
        self.copy.record(time.time())
        async with self.media_lock:
            await self._publish(True)

    async def _finish(self) -> None:
        self.send("finish", {})
        self.finished = True
        self.finished_at = time.time()
        self.shared.records.leaves.append((self.user_id, self.finished_at))
        async with self.media_lock:
            await self._leave("finished")
        self.copy.finish(time.time())  # as the page: leave the room first, then stop the recorder
        self.shared.records.counts["finished"] += 1
        if self.copy.settled:
            self.stop(1000)
        else:
            asyncio.get_running_loop().call_later(self.shared.keep_open_s, self._leave_page)
