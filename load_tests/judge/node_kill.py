"""What a node kill cost (pure): seats lost, how long until all was well again, bystanders dropped.

From the users' records (every socket with its node, open and close times, and who closed it; every
`room.assign` a candidate got) and the run's live timeline (occupied and watched rooms, once a second):

- the dead node's candidates: those whose socket on it was open at the kill;
- a seat is lost when such a candidate never gets `room.assign` again, or gets another room than it
  had (sticky seats); one that left on purpose before it was back (finish, its own network loss) is
  excused;
- recovery: from the kill until every one of them has its `room.assign` again and, from then on, the
  first moment the timeline shows every occupied room watched;
- bystanders: users whose socket on another node was closed by the hub (not by themselves) after the
  kill: a node's death must not touch the others' users.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

Link = tuple[str, str, int, float, float, int, bool]  # user, role, node, hello at, closed at, code, own


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
    back: list[float] = []
    never, moved, excused = [], [], []
    for user in on_dead:
        seen = assigns.get(user, [])
        i = bisect.bisect_right(seen, (killed_at, "\uffff"))
        before = seen[i - 1][1] if i else None
        after = seen[i] if i < len(seen) else None
        left = min(own_leaves.get(user, []), default=None)
        if left is not None and (after is None or left < after[0]):
            excused.append(user)
        elif after is None:
            never.append(user)
        elif before is not None and after[1] != before:
            moved.append(user)
        else:
            back.append(after[0] - killed_at)
    seated_at = killed_at + max(back, default=0.0)
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
        "reseated_p50_s": round(sorted(back)[len(back) // 2], 2) if back else None,
        "reseated_max_s": round(max(back), 2) if back else None,
        "kill_recovery_s": recovery,
        "bystanders_dropped": len(dropped),
        "bystanders": dropped[:50],
    }
