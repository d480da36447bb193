"""Per-peer stream recordings (contract §4.1 stream recording, §3.6 `stream.recording.*`).

A peer's recording starts when it first publishes video and stops when the peer leaves (by any
reason; a session closes only when its last peer has left). `delay_s` later the simulator writes a
small real object (an MP4 `ftyp` box plus a `free` box of JSON metadata) at

    <prefix>/<room_id>/<YYYYMMDD session start>/<session_id>/<peer_id>/<stream_id>.mp4

(the layout of 100ms's legacy per-peer files, §4.3; the stream layout itself is undocumented),
adds a recording asset of type "stream" and sends `stream.recording.success`. Faults:
`recording.drop` (nothing at all happens), `recording.fail` (`stream.recording.failure` with
`error_message` "INTERNAL_ERROR", a failed asset, no object). A write that fails for real gives a
failure with "CLOUD_ACCESS_ERROR".
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from server.hms.simulator import times
from server.hms.simulator.config import new_id
from server.hms.simulator.faults import Faults, Occasion
from server.hms.simulator.models import Asset, Peer, Recording
from server.hms.simulator.storage import Storage
from server.hms.simulator.tasks import Tasks
from server.hms.simulator.workspace import Workspace

log = logging.getLogger("proctorhub.hms.simulator")

PRESIGN_S = 24 * 3600  # webhook presigned URLs are valid 24 h (§3.6)
Emit = Callable[[str, str, dict[str, Any]], None]  # (event type, room id, data)


def _box(kind: bytes, payload: bytes) -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


def fake_mp4(metadata: dict[str, Any]) -> bytes:
    """A few hundred bytes that start like an MP4 and say what they stand for."""
    ftyp = _box(b"ftyp", b"isom" + (512).to_bytes(4, "big") + b"isomiso2avc1mp41")
    return ftyp + _box(b"free", json.dumps(metadata, sort_keys=True).encode())


class Recorder:
    def __init__(
        self,
        *,
        workspace: Workspace,
        storage: Storage,
        faults: Faults,
        tasks: Tasks,
        emit: Emit,
        clock: Callable[[], float],
        delay_s: float,
    ) -> None:
        self._workspace = workspace
        self._storage = storage
        self._faults = faults
        self._tasks = tasks
        self._emit = emit
        self._clock = clock
        self._delay_s = delay_s

    def on_video(self, peer: Peer) -> None:
        """The peer publishes video: its recording starts, once per peer."""
        if not peer.recordings:
            peer.recordings.append(Recording(id=new_id(), stream_id=peer.stream_id, started_at=self._clock()))

    def on_leave(self, peer: Peer, *, at: float) -> None:
        recording = peer.recording
        if recording is None:
            return
        recording.stopped_at = at
        self._tasks.later(self._delay_s, lambda: self._finish(peer, recording), name=f"hms-sim-rec-{peer.id}")

    def key(self, peer: Peer, recording: Recording) -> str:
        session = self._workspace.sessions[peer.session_id]
        day = times.yyyymmdd(session.created_at)
        return f"{peer.room_id}/{day}/{peer.session_id}/{peer.id}/{recording.stream_id}.mp4"

    async def _finish(self, peer: Peer, recording: Recording) -> None:
        key = self.key(peer, recording)
        occasion = Occasion(
            room_id=peer.room_id, session_id=peer.session_id, peer_id=peer.id, user_id=peer.user_id
        )
        if self._faults.take("recording.drop", occasion, detail=key):
            return
        duration = max(0, round((recording.stopped_at or recording.started_at) - recording.started_at))
        data: dict[str, Any] = {
            "room_id": peer.room_id,
            "session_id": peer.session_id,
            "peer_id": peer.id,
            "stream_id": recording.stream_id,
            "user_id": peer.user_id,
            "recording_id": recording.id,
            "recording_path": self._storage.path(key),
            "size": 0,
            "duration": duration,
            "type": "regular",
            "stream_type": "regular",
        }
        error = "INTERNAL_ERROR" if self._faults.take("recording.fail", occasion, detail=key) else None
        if error is None:
            body = fake_mp4(
                {k: data[k] for k in ("room_id", "session_id", "peer_id", "user_id", "stream_id")}
            )
            try:
                await self._storage.put(key, body, "video/mp4")
                data["size"] = len(body)
                data["recording_presigned_url"] = await self._storage.presign(key, PRESIGN_S)
            except Exception as exc:  # any storage failure is the recording's failure, as at 100ms
                log.warning(
                    "recording %s could not be written to %s: %s", recording.id, data["recording_path"], exc
                )
                error = "CLOUD_ACCESS_ERROR"
        self._workspace.add_asset(
            Asset(
                id=new_id(),
                job_id=recording.id,
                room_id=peer.room_id,
                session_id=peer.session_id,
                status="failed" if error else "completed",
                key=key,
                path=data["recording_path"],
                size=data["size"],
                duration=duration,
                created_at=self._clock(),
                metadata={
                    "stream_id": recording.stream_id,
                    "peer_id": peer.id,
                    "user_id": peer.user_id,
                    "stream_type": "regular",
                },
            )
        )
        if error is None:
            self._emit("stream.recording.success", peer.room_id, data)
        else:
            data.pop("recording_presigned_url", None)
            self._emit("stream.recording.failure", peer.room_id, {**data, "error_message": error})
