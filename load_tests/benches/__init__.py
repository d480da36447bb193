"""The benches: one measurement each, run by hand, never by pytest (load_tests/README.md).

Each is `python -m load_tests.benches.MODULE ...` or `proctorhub loadtest NAME ...`, both with
`--help`; NAME -> MODULE below. The other modules here are their parts: hub_scenarios.py and
hub_tokens.py (hub_bench's scenarios), held_sockets.py (its clients in worker processes),
bare_server.py (its baseline), output.py (the table and JSON file).
"""

from __future__ import annotations

BENCHES: dict[str, tuple[str, str]] = {
    "hub": ("hub_bench", "the hub's transport: idle sockets, presence, broadcast, token refresh"),
    "storm": ("storm_bench", "allocation under a join storm, and after a proctor loss"),
    "shutdown": ("shutdown_bench", "SIGTERM to a Redis node mid-storm: time to exit, seats kept"),
    "planner": ("planner_bench", "the allocation planner alone, on 20,000 candidates"),
    "webhook": ("webhook_bench", "webhook intake: accepted per second, and time to drain"),
    "alert-latency": ("alert_latency", "from a 100ms webhook to the alert on a proctor's socket"),
    "page": ("page_bench", "the proctor page under a stream of statuses (Chromium)"),
    "redis-costs": ("redis_costs", "what a join, a status change and a leave cost Redis"),
    "scrape": ("scrape_bench", "what /metrics' presence counts cost a node per scrape"),
    "client": ("client_bench", "which WebSocket client for the simulated users"),
}
ALIASES = {"bench": "hub"}  # its name before the others were wired
