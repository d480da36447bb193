"""/healthz, /readyz and /metrics on a real hub: the figures move with what happens."""

from __future__ import annotations

import re

import httpx

from tests.client import login, open_client, token
from tests.conftest import API_KEY, SECRET, create_event
from tests.servers import HubProcess


def metric(text: str, name: str, labels: str = "", *, default: float | None = None) -> float:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} (\S+)$"
    found = re.search(pattern, text, re.M)
    if found is None:
        if default is not None:
            return default
        raise AssertionError(f"{name}{labels} not in /metrics")
    return float(found.group(1))


async def test_health_and_metrics_follow_the_hub(shared_hub: HubProcess) -> None:
    assert httpx.get(f"{shared_hub.http}/healthz").json()["status"] == "ok"
    ready = httpx.get(f"{shared_hub.http}/readyz")
    assert ready.status_code == 200 and ready.json()["store"] == "memory"
    create_event(shared_hub, "metrics")
    before = shared_hub.metrics_text()
    client, _ = await login(shared_hub.ws, token(SECRET, "m1", event="metrics"))
    await client.send("ping")
    await client.expect("pong")
    refused = await open_client(shared_hub.ws)
    await refused.send("auth", {"token": "garbage"})
    assert await refused.closed_with() == 4401
    after = shared_hub.metrics_text()
    online = '{role="candidate"}'
    assert (
        metric(after, "proctorhub_connections", online)
        == metric(before, "proctorhub_connections", online) + 1
    )
    ping = '{type="ping"}'
    pings_before = metric(before, "proctorhub_messages_in_total", ping, default=0.0)
    assert metric(after, "proctorhub_messages_in_total", ping) >= pings_before + 1
    hellos_before = metric(before, "proctorhub_messages_out_total", '{type="hello"}', default=0.0)
    assert metric(after, "proctorhub_messages_out_total", '{type="hello"}') >= hellos_before + 1
    invalid = '{reason="invalid_token"}'
    assert metric(after, "proctorhub_auth_failures_total", invalid) >= 1
    assert metric(after, "proctorhub_closes_total", '{code="4401"}') >= 1
    assert metric(after, "proctorhub_send_queue_drops_total") == 0
    assert metric(after, "proctorhub_joins_waiting") == 0  # the join gate: nobody left in line
    assert metric(after, "proctorhub_joins_refused_total") == 0
    assert metric(after, "proctorhub_tokens_minted_total") >= 1


def test_metrics_needs_the_api_key(shared_hub: HubProcess) -> None:
    """/metrics tells who is online: with HUB_API_KEY set, only the key may read it (a session may not)."""
    url = f"{shared_hub.http}/metrics"
    missing = httpx.get(url)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["code"] == "unauthenticated"
    admin = token(SECRET, "metrics-admin", "admin", "*")
    for credential in ("not-the-key", admin):
        refused = httpx.get(url, headers={"Authorization": f"Bearer {credential}"})
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_credentials"
    allowed = httpx.get(url, headers={"Authorization": f"Bearer {API_KEY}"})
    assert allowed.status_code == 200 and "proctorhub_connections" in allowed.text
