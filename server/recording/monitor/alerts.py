"""Alerts from gaps: what to store and publish when a timeline changes. Pure.

An alert's id names its gap (`video.gap:{candidate}:{start ms}`, `recording.failed:{candidate}:{peer}`),
so two evaluations of one timeline agree on it. A video gap (or dispute) is open while it lasts and
closed when it ends; a failed or missing recording stays open (there is nothing the proctor can do to end
it) until a late recording withdraws it, or until segments the candidate's page uploaded cover it
(extension E15): then it is closed with `detail.backfilled: true`. A gap found only after it ended is
published open and then closed, so every client sees both states.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.protocol import Outbound
from server.recording.monitor.intervals import epoch_ms
from server.recording.monitor.timeline import SPAN_KINDS, VIDEO_DISPUTED, Gap, Timeline


def alert_id(candidate_id: str, gap: Gap) -> str:
    suffix = str(int(gap.start * 1000)) if gap.kind in SPAN_KINDS else gap.peer_id
    return f"{gap.kind}:{candidate_id}:{suffix}"


def alert_of(candidate_id: str, room_id: str | None, gap: Gap) -> dict[str, Any]:
    detail: dict[str, Any] = {"cause": gap.cause}
    if gap.peer_id:
        detail.update(peer_id=gap.peer_id, session_id=gap.session_id)
    if gap.kind == VIDEO_DISPUTED:
        # Both reports: the page's own, and what each proctor's page saw when the dispute began.
        detail.update(reported={"joined": True, "video": True}, observed=dict(gap.observed))
    ongoing = gap.kind in SPAN_KINDS and gap.end is None
    if gap.backfilled:
        detail["backfilled"] = True
    stays_open = gap.kind not in SPAN_KINDS and not gap.backfilled
    return {
        "alert_id": alert_id(candidate_id, gap),
        "kind": gap.kind,
        "state": "open" if ongoing or stays_open else "closed",
        "candidate_id": candidate_id,
        "room_id": gap.room_id or room_id,
        "started_at": epoch_ms(gap.start),
        "ended_at": epoch_ms(gap.end),
        "detail": detail,
    }


@dataclass(frozen=True)
class AlertChange:
    alert: dict[str, Any]
    """The alert as it is now stored."""
    first_seen: bool

    def messages(self) -> list[Outbound]:
        """An alert seen for the first time already closed is announced open, then closed."""
        out = []
        if self.first_seen and self.alert["state"] == "closed":
            out.append(Outbound("alert", {**self.alert, "state": "open", "ended_at": None}))
        out.append(Outbound("alert", self.alert))
        return out


def _essence(alert: dict[str, Any]) -> tuple[Any, ...]:
    return alert["state"], alert["ended_at"], alert["detail"]


def alert_changes(
    candidate_id: str, room_id: str | None, timeline: Timeline, stored: dict[str, dict[str, Any]]
) -> list[AlertChange]:
    """What to store and publish so the stored alerts match the timeline's gaps."""
    changes: list[AlertChange] = []
    wanted = {a["alert_id"]: a for a in (alert_of(candidate_id, room_id, g) for g in timeline.gaps)}
    for key, alert in wanted.items():
        held = stored.get(key)
        if held is None or _essence(held) != _essence(alert):
            changes.append(AlertChange(alert, first_seen=held is None))
    for key, held in stored.items():
        if key not in wanted and held["state"] == "open":
            # A late signal showed there was no gap after all (e.g. the recording arrived late).
            withdrawn = {
                **held,
                "state": "closed",
                "ended_at": held["started_at"],
                "detail": {**held["detail"], "withdrawn": True},
            }
            changes.append(AlertChange(withdrawn, first_seen=False))
    return changes


def alert_key(alert: dict[str, Any]) -> tuple[Any, ...]:
    """Open ones first, then the newest first."""
    return (alert["state"] != "open", -(alert["started_at"] or 0), alert["alert_id"])
