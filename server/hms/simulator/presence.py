"""Peers in rooms: join, publish, leave, network loss and reconnect, kicks, ending a room.

Contract: §1.4 (what is refused at join), §1.5 and §3.4 (reconnect within the window keeps the
peer_id and sends nothing; after it, `peer.leave.success` with "websocket closed"), §2.3 (remove-peers
and end-room are asynchronous), §2.4 and §3.4 (a session opens with the first peer and closes when
the last one leaves). Events go out through `emit(type, room_id, data)`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from server.hms.simulator import times
from server.hms.simulator.auth import AppClaims, verify_app_token
from server.hms.simulator.config import SimulatorConfig
from server.hms.simulator.errors import HmsError
from server.hms.simulator.faults import Faults, Occasion
from server.hms.simulator.models import DISCONNECTED, JOINED, LEFT, Peer, Room, Session, Track
from server.hms.simulator.recorder import Emit, Recorder
from server.hms.simulator.tasks import Tasks
from server.hms.simulator.workspace import Workspace

CLIENT_REQUEST = "client request"
PEER_KICKED = "peer kicked"
WEBSOCKET_CLOSED = "websocket closed"
NETWORK_REASONS = (WEBSOCKET_CLOSED, "ice connection state closed")


class Presence:
    def __init__(
        self,
        *,
        config: SimulatorConfig,
        workspace: Workspace,
        recorder: Recorder,
        faults: Faults,
        tasks: Tasks,
        emit: Emit,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._workspace = workspace
        self._recorder = recorder
        self._faults = faults
        self._tasks = tasks
        self._emit = emit
        self._clock = clock

    def _verify(self, token: object) -> AppClaims:
        if not isinstance(token, str) or not token:
            raise HmsError(401, "malformed token", ["malformed token"])
        c = self._config
        return verify_app_token(
            token, access_key=c.access_key, secret=c.secret, now=self._clock(), skew_s=c.skew_s
        )

    # joining

    def join(self, token: object, *, user_name: str = "", user_data: str = "") -> Peer:
        """A client joins with an app token (§1.4): 401 token, 404 room, 403 disabled or role."""
        claims = self._verify(token)
        room = self._workspace.rooms.get(claims.room_id)
        if room is None:
            raise HmsError(404, "room not found", [f"room {claims.room_id!r} does not exist"])
        if not room.enabled:
            raise HmsError(403, "room is disabled", [f"room {room.id!r} is disabled"])
        if claims.role not in self._config.roles:
            self._emit("peer.join.failure", room.id, self._join_failure(room, claims, user_name, user_data))
            raise HmsError(403, "role not allowed", [f"role {claims.role!r} is not in the template"])
        now = self._clock()
        session = self._workspace.active_session(room)
        if session is None:
            session = self._workspace.open_session(room, now=now)
            self._emit("session.open.success", room.id, self._session_data(room, session))
        peer = Peer(
            id=str(uuid.uuid4()),
            room_id=room.id,
            session_id=session.id,
            user_id=claims.user_id,
            role=claims.role,
            name=user_name,
            metadata=user_data,
            joined_at=now,
            token_jti=claims.jti,
            token_exp=claims.exp,
            stream_id=str(uuid.uuid4()),
        )
        self._workspace.add_peer(peer)
        session.updated_at = now
        self._emit("peer.join.success", room.id, self._peer_data(peer))
        return peer

    def _join_failure(self, room: Room, claims: AppClaims, user_name: str, user_data: str) -> dict[str, Any]:
        return {
            "room_id": room.id,
            "room_name": room.name,
            "peer_id": str(uuid.uuid4()),
            "user_id": claims.user_id,
            "user_name": user_name,
            "user_data": user_data,
            "role": claims.role,
            "template_id": room.template_id,
            "joined_at": times.GO_ZERO,
            "type": "regular",
            "error_message": "role not allowed",
        }

    # media

    def publish(self, peer_id: str, *, video: bool, audio: bool) -> Peer:
        """Set the peer's published tracks; the first video starts its recording (§4.1)."""
        peer = self._live(peer_id)
        if peer.state != JOINED:
            raise HmsError(409, "peer is not connected", ["the peer lost its network; reconnect first"])
        now = self._clock()
        for kind, wanted in (("video", video), ("audio", audio)):
            current = [t for t in peer.tracks.values() if t.type == kind]
            if wanted and not current:
                track = Track(id=str(uuid.uuid4()), stream_id=peer.stream_id, type=kind, started_at=now)
                peer.tracks[track.id] = track
            elif not wanted:
                for track in current:
                    del peer.tracks[track.id]
        if video:
            self._recorder.on_video(peer)
        return peer

    # leaving

    def request_leave(self, peer_id: str) -> Peer:
        """The client calls leave(); leaving twice is `peer.leave.failure` (§3.4) and 409."""
        peer = self._workspace.peer(peer_id)
        if not peer.present:
            self._emit("peer.leave.failure", peer.room_id, self._leave_failure(peer))
            raise HmsError(409, "peer not joined", [f"peer {peer_id!r} has already left"])
        self.leave(peer, CLIENT_REQUEST)
        return peer

    def leave(self, peer: Peer, reason: str, message: str = "") -> bool:
        """Take a present peer out; the last one out closes the session. False if already gone."""
        if not peer.present:
            return False
        now = self._clock()
        if peer.window is not None:
            peer.window.cancel()
            peer.window = None
        peer.state, peer.left_at, peer.leave_reason, peer.leave_message = LEFT, now, reason, message
        peer.tracks.clear()
        self._recorder.on_leave(peer, at=now)
        session = self._workspace.sessions[peer.session_id]
        session.updated_at = now
        data = self._peer_data(peer)
        data.update(
            left_at=times.nanos(now),
            duration=max(0, round(now - peer.joined_at)),
            reason=reason,
            message=message,
        )
        self._emit("peer.leave.success", peer.room_id, data)
        if not session.present_peers():
            self._close_session(session, now)
        return True

    def _close_session(self, session: Session, now: float) -> None:
        room = self._workspace.rooms[session.room_id]
        session.ended_at = session.updated_at = now
        room.active_session_id = None
        data = self._session_data(room, session)
        data.update(
            session_stopped_at=times.nanos(now),
            session_duration=max(0, round(now - session.created_at)),
        )
        self._emit("session.close.success", room.id, data)

    # network

    def lose_network(self, peer_id: str, reason: str = WEBSOCKET_CLOSED) -> Peer:
        """The peer goes silent; unless it reconnects within the window it leaves with `reason`."""
        if reason not in NETWORK_REASONS:
            raise HmsError(400, "Invalid body param: reason", [f"reason must be one of {NETWORK_REASONS}"])
        peer = self._live(peer_id)
        if peer.state == DISCONNECTED:
            return peer
        peer.state, peer.disconnected_at = DISCONNECTED, self._clock()
        occasion = Occasion(
            room_id=peer.room_id, session_id=peer.session_id, peer_id=peer.id, user_id=peer.user_id
        )
        if self._faults.take("network.kick", occasion, detail=reason):
            self.leave(peer, reason)
            return peer
        peer.window = self._tasks.later(
            self._config.reconnect_window_s,
            lambda: self._window_over(peer, reason),
            name=f"hms-sim-window-{peer.id}",
        )
        return peer

    def _window_over(self, peer: Peer, reason: str) -> None:
        peer.window = None  # this task is ending; leave() must not cancel it
        if peer.state == DISCONNECTED:
            self.leave(peer, reason)

    def reconnect(self, peer_id: str, token: object) -> Peer:
        """Within the window the SDK resumes the same peer, re-presenting a token (§1.5)."""
        peer = self._live(peer_id)
        claims = self._verify(token)  # 401: the peer stays silent and leaves when the window ends
        if claims.room_id != peer.room_id or claims.user_id != peer.user_id:
            raise HmsError(403, "token does not match peer", ["the token is for another room or user"])
        if peer.window is not None:
            peer.window.cancel()
            peer.window = None
        peer.state, peer.disconnected_at = JOINED, None
        peer.token_jti, peer.token_exp = claims.jti, claims.exp
        return peer

    # server side removal (REST)

    def remove(self, peers: list[Peer], message: str) -> None:
        """remove-peers (§2.3): asynchronous; each leaves with "peer kicked" and the given message."""

        def kick() -> None:
            for peer in peers:
                self.leave(peer, PEER_KICKED, message)

        self._tasks.later(self._config.remove_delay_s, kick, name="hms-sim-remove-peers")

    def end_room(self, room: Room, session: Session, *, reason: str, lock: bool) -> None:
        """end-room (§2.3): `lock` disables the room now; the session ends asynchronously."""
        if lock:
            room.enabled = False
            room.updated_at = self._clock()

        def end() -> None:
            if not session.active:
                return
            data = self._session_data(room, session)
            data.update(
                peer_id="", user_id="", user_name="", role="", lock_room=lock, reason=reason, source="api"
            )
            self._emit("room.end.success", room.id, data)
            for peer in session.present_peers():
                self.leave(peer, PEER_KICKED, reason)

        self._tasks.later(self._config.remove_delay_s, end, name="hms-sim-end-room")

    def role_changed(self, peer: Peer, previous: str) -> None:
        """A role change made through the REST API (§3.4: `role_change_requested_by` absent)."""
        data = self._peer_data(peer)
        data.update(previous_role=previous, role=peer.role, role_changed_at=times.nanos(self._clock()))
        self._emit("role.change.success", peer.room_id, data)

    # helpers

    def _live(self, peer_id: str) -> Peer:
        peer = self._workspace.peer(peer_id)
        if not peer.present:
            raise HmsError(410, "peer has left", [f"peer {peer_id!r} left: {peer.leave_reason}"])
        return peer

    def _session_data(self, room: Room, session: Session) -> dict[str, Any]:
        return {
            "room_id": room.id,
            "room_name": room.name,
            "session_id": session.id,
            "template_id": room.template_id,
            "session_started_at": times.nanos(session.created_at),
        }

    def _peer_data(self, peer: Peer) -> dict[str, Any]:
        room = self._workspace.rooms[peer.room_id]
        session = self._workspace.sessions[peer.session_id]
        return {
            **self._session_data(room, session),
            "peer_id": peer.id,
            "user_id": peer.user_id,
            "user_name": peer.name,
            "user_data": peer.metadata,
            "role": peer.role,
            "type": "regular",
            "joined_at": times.nanos(peer.joined_at),
        }

    def _leave_failure(self, peer: Peer) -> dict[str, Any]:
        data = self._peer_data(peer)
        data.update(left_at=times.GO_ZERO, duration=0, reason="", message="", error_message="peer not joined")
        return data
