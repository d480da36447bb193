"""1,000 sockets whose 100ms tokens were minted together: every one refreshed, spread out in time."""

from __future__ import annotations

import asyncio
import time

from tests.client import login, token
from tests.conftest import SECRET, create_event
from tests.polling import eventually
from tests.token_support import TokenHolder


async def test_many_tokens_minted_together_refresh_spread_out(hub_factory) -> None:
    hub = hub_factory(HUB_RATE_PER_S=100, HUB_RATE_BURST=100)
    create_event(hub, "tok-1000", token_ttl_s=20, room_size=100)
    clients = await asyncio.gather(
        *(login(hub.ws, token(SECRET, f"c{i}", event="tok-1000")) for i in range(1000))
    )
    holders = [TokenHolder(c) for c, _ in clients]

    def refreshed() -> int:
        return sum(1 for h in holders if any(t["type"] == "token.refresh" for t in h.tokens))

    # minted over the logins' few seconds, renewed 10-13.3 s after minting
    await eventually(lambda: refreshed() == 1000, timeout=60, what="every connection's first refresh")
    refresh_times = sorted(
        t["received"] for h in holders for t in h.tokens[1:2] if t["type"] == "token.refresh"
    )
    assert len(refresh_times) == 1000, "the first token after room.assign is the refresh"
    busiest = max(sum(1 for t in refresh_times if start <= t < start + 0.1) for start in refresh_times)
    assert busiest < 500, f"{busiest} refreshes within 100 ms"
    now = time.time()
    assert all(h.current["token_exp"] > now for h in holders)
    for h in holders:
        h.stop()
