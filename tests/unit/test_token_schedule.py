"""When a held 100ms token is renewed: the lead before `exp` by lifetime, and the jitter that keeps
tokens minted together from being renewed together (pure: `refresh_lead`, `refresh_at`)."""

from __future__ import annotations

import random

from server.hubs.tokens import refresh_at, refresh_lead
from server.store.records import HeldToken


def test_refresh_lead_follows_the_lifetime() -> None:
    assert refresh_lead(20) == 20 / 3
    assert refresh_lead(540) == 180
    assert refresh_lead(600) == 60
    assert refresh_lead(3600) == 360
    assert refresh_lead(86400) == 8640


def test_tokens_minted_together_are_not_renewed_together() -> None:
    rng = random.Random(1)
    tokens = [HeldToken("e", f"u{i}", "r", "t", f"j{i}", 1000.0) for i in range(1000)]
    times = sorted(refresh_at(t, 60, rng) for t in tokens)
    assert all(1000 - 30 <= t <= 1000 - 20 for t in times)
    busiest = max(sum(1 for t in times if start <= t < start + 0.1) for start in times)
    assert busiest < 100
