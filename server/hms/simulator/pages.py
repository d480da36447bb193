"""List pagination as 100ms does it (contract §2.1): `limit` 10-100 (default 10) and `start`.

The answer is `{"limit": n, "data": [...], "last": "<id of last item>"}`; a client passes `last` as
the next `start`, so `start` is exclusive here (the page begins after that id). Items keep creation
order (oldest first). An empty or short page means the end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from server.hms.simulator.errors import bad_request

T = TypeVar("T")

DEFAULT_LIMIT, MIN_LIMIT, MAX_LIMIT = 10, 10, 100


def parse_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise bad_request("Invalid query param: limit", f"limit must be an integer, got {raw!r}") from None
    if not MIN_LIMIT <= limit <= MAX_LIMIT:
        raise bad_request(
            "Invalid query param: limit", f"limit must be between {MIN_LIMIT} and {MAX_LIMIT}, got {limit}"
        )
    return limit


def paginate(
    items: Sequence[T],
    *,
    start: str | None,
    limit: int,
    ident: Callable[[T], str],
    render: Callable[[T], Any],
    position: Callable[[str], int | None],
) -> dict[str, Any]:
    """One page of `items` (filtered, in creation order) after the object whose id is `start`.

    `position` gives any object's creation rank, so the cursor works even when its own object has
    dropped out of the filter since (a room disabled between two pages).
    """
    chunk: list[T] = list(items)
    if start:
        rank = position(start)
        if rank is None:
            raise bad_request("Invalid query param: start", f"unknown id {start!r}")
        chunk = [item for item in chunk if (position(ident(item)) or 0) > rank]
    chunk = chunk[:limit]
    return {"limit": limit, "data": [render(i) for i in chunk], "last": ident(chunk[-1]) if chunk else ""}
