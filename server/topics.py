"""Every pub/sub topic the hub uses, named in one place.

    watch:{event}           proctors and admins of an event: candidate.status, flag.added, proctor.shortage
    admins:{event}          admins of an event only: proctor.status and alerts
    user:{event}:{user}     every socket of one user: warnings, alerts for a proctor, `_seat` notes

Messages whose type starts with `_` are notes between nodes (observers see them, sockets never do).
"""

from __future__ import annotations

WATCH = "watch"
ADMINS = "admins"
USER = "user"
EVENT_WIDE = (WATCH, ADMINS)
"""Topics every change to an event's user records is announced on (snapshots and stats follow them)."""


def watch_topic(event_id: str) -> str:
    """Proctors and admins of an event: candidate.status, flags."""
    return f"{WATCH}:{event_id}"


def admin_topic(event_id: str) -> str:
    """Admins of an event: what only they see, such as proctors coming and going."""
    return f"{ADMINS}:{event_id}"


def _esc(part: str) -> str:
    return part.replace("%", "%25").replace(":", "%3A")


def _unesc(part: str) -> str:
    return part.replace("%3A", ":").replace("%25", "%")


def user_topic(event_id: str, user_id: str) -> str:
    """Every tab of one user: warnings and other direct messages (ids escaped: `:` may be in them)."""
    return f"{USER}:{_esc(event_id)}:{_esc(user_id)}"


def user_of(topic: str) -> tuple[str, str] | None:
    """(event, user) of a user topic, None for any other topic."""
    kind, _, rest = topic.partition(":")
    event_id, sep, user_id = rest.partition(":")
    if kind != USER or not sep:
        return None
    return _unesc(event_id), _unesc(user_id)


def event_wide(topic: str) -> str | None:
    """The event of a `watch:` or `admins:` topic, None for any other topic."""
    kind, _, event_id = topic.partition(":")
    return event_id if kind in EVENT_WIDE else None
