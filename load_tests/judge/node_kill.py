"""What a node kill cost (pure): seats lost, how long until all was well again, bystanders dropped.

From the users' records (every socket with its node, open and close times, and who closed it; every
`room.assign` a candidate got) and the run's live timeline (occupied and watched rooms, once a second):

- the dead node's candidates: those whose socket on it was open at the kill;
- a seat is lost when such a candidate never gets `room.assign` again, or gets another room than it
  had (sticky seats); one that left on purpose before it was back (finish, its own network loss) is
  excused, also when it left between two sockets (its network went while it waited to reconnect);
- recovery: from the kill until every one of them has its `room.assign` again (or, for one that left
  before it was back, until it left: it waited that long) and, from then on, the first moment the
  timeline shows every occupied room watched;
- bystanders: users whose socket on another node was closed by the hub (not by themselves) after the
  kill: a node's death must not touch the others' users;
- the slowest re-seats, each split into when its client saw the dead socket close, when it had its
  `hello` again (backoff, connect, auth) and its `room.assign` (the hub's seating), to tell a slow
  client from a slow hub.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

Link = tuple[str, str, int, float, float, int, bool]  # user, role, node, hello at, closed at, code, own
SLOWEST = 10  # re-seats detailed in the report


def figures(
    parts: Sequence[dict[str, Any]],
    timeline: Sequence[dict[str, Any]],
    *,
    t0: float,
    node: int,
    killed_at: float,
) -> dict[str, Any]:
    links: list[Link] = [tuple(x) for p in parts for x in p.get("links", [])]
    assigns: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for user, at, room in (a for p in parts for a in p.get("assigns", [])):
        assigns[user].append((at, room))
    for seen in assigns.values():
        seen.sort()
    on_dead = sorted(
        {
            u
            for u, role, n, opened, closed, _, _ in links
            if role == "candidate" and n == node and opened <= killed_at < closed
        }
    )
    own_leaves: dict[str, list[float]] = defaultdict(list)
    for u, _, _, _, closed, _, own in links:
        if own and closed > killed_at:
            own_leaves[u].append(closed)
    for u, at in (x for p in parts for x in p.get("leaves", [])):
        if at > killed_at:
            own_leaves[u].append(at)
    back_of: dict[str, float] = {}  # the re-seated: seconds from the kill to their room.assign
    never, moved = [], []
    excused: dict[str, float] = {}  # left on its own before it was back: seconds it waited till then
    for user in on_dead:
        seen = assigns.get(user, [])
        i = bisect.bisect_right(seen, (killed_at, "\uffff"))
        before = seen[i - 1][1] if i else None
        after = seen[i] if i < len(seen) else None
        left = min(own_leaves.get(user, []), default=None)
        if left is not None and (after is None or left < after[0]):
            excused[user] = left - killed_at
        elif after is None:
            never.append(user)
        elif before is not None and after[1] != before:
            moved.append(user)
        else:
            back_of[user] = after[0] - killed_at
    back = sorted(back_of.values())
    seated_at = killed_at + max(back + list(excused.values()), default=0.0)
    watched_at = next(
        (t0 + p["t_s"] for p in timeline if t0 + p["t_s"] >= seated_at and p.get("unwatched", 0) == 0), None
    )
    recovery = None if never or watched_at is None else round(max(seated_at, watched_at) - killed_at, 2)
    dropped = sorted(
        {u for u, _, n, _, closed, _, own in links if n != node and closed >= killed_at and not own}
    )
    return {
        "node_killed": node,
        "killed_at_s": round(killed_at - t0, 2),
        "dead_node_candidates": len(on_dead),
        "seats_lost": len(never) + len(moved),
        "seats_never_back": never[:50],
        "seats_moved": moved[:50],
        "left_before_back": len(excused),
        "left_before_back_users": sorted(excused)[:50],
        "left_before_back_max_s": round(max(excused.values()), 2) if excused else None,
        "reseated_p50_s": round(back[len(back) // 2], 2) if back else None,
        "reseated_max_s": round(back[-1], 2) if back else None,
        "kill_recovery_s": recovery,
        "bystanders_dropped": len(dropped),
        "bystanders": dropped[:50],
        "slowest_reseats": slowest(back_of, links, node=node, killed_at=killed_at),
    }


def slowest(
    back_of: dict[str, float], links: Sequence[Link], *, node: int, killed_at: float
) -> list[dict[str, Any]]:
    """The slowest re-seats, each with its phases in seconds from the kill: `noticed` (the dead node's
    socket closed at the client), `hello` (its first hello after the kill; `node` is where), `seated`."""
    worst = sorted(back_of.items(), key=lambda kv: (-kv[1], kv[0]))[:SLOWEST]
    rows = []
    for user, seated in worst:
        mine = [x for x in links if x[0] == user]
        noticed = min((x[4] for x in mine if x[2] == node and x[3] <= killed_at < x[4]), default=None)
        again = min((x for x in mine if x[3] > killed_at), key=lambda x: x[3], default=None)
        rows.append(
            {
                "user": user,
                "noticed_s": None if noticed is None else round(noticed - killed_at, 2),
                "hello_s": None if again is None else round(again[3] - killed_at, 2),
                "node": None if again is None else again[2],
                "seated_s": round(seated, 2),
            }
        )
    return rows
