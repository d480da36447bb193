"""Fail closed outside the embedded mode (issue 12): each unsafe configuration stops the real command
line at start-up with one line naming the setting; the simulator's /_sim wants its control key."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from server.config import ConfigError, check_bind, load_settings
from tests.servers import ROOT, RedisServer, free_port, start_simulator

SECRET = "fail-closed-secret-0123456789abcdef"
CONTROL_KEY = "control-key-0123456789"
REAL_100MS = {"HMS_API_BASE": "https://api.100ms.live/v2", "HMS_ACCESS_KEY": "k1", "HMS_SECRET": "s" * 40}


def refusal(command: str, host: str, env: dict[str, str]) -> str:
    """Run `proctorhub <command> --host <host>`; it must exit (2) with one line: that line."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "REDIS_", "HMS_", "S3_"))}
    done = subprocess.run(
        [sys.executable, "-m", "server", command, "--host", host, "--port", str(free_port())],
        cwd=ROOT,
        env={**base, "LOG_LEVEL": "WARNING", **env},
        capture_output=True,
        text=True,
        timeout=20,  # a command that starts instead of refusing fails the test here
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "token=" not in done.stdout, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_redis_without_a_shared_100ms_stops_start_up(redis_server: RedisServer) -> None:
    line = refusal("run", "127.0.0.1", {"HUB_SECRET": SECRET, "REDIS_URL": redis_server.url})
    assert "'HMS_API_BASE'" in line and "REDIS_URL" in line and "simulate-100ms" in line


def test_the_embedded_simulator_refuses_a_public_bind() -> None:
    line = refusal("run", "0.0.0.0", {"HUB_SECRET": SECRET, "HMS_SIMULATOR": "embedded"})
    assert "'HMS_SIMULATOR=embedded'" in line and "0.0.0.0" in line


def test_no_hub_secret_on_a_public_bind_stops_start_up() -> None:
    line = refusal("run", "0.0.0.0", {})
    assert "'HUB_SECRET'" in line and "0.0.0.0" in line
    assert "'HUB_SECRET'" in refusal("run", "0.0.0.0", REAL_100MS)


def test_the_simulator_is_never_mounted_on_a_public_bind() -> None:
    line = refusal("run", "0.0.0.0", {"HUB_SECRET": SECRET})
    assert "'HMS_API_BASE'" in line


def test_the_standalone_simulator_off_loopback_needs_a_control_key() -> None:
    line = refusal("simulate-100ms", "0.0.0.0", {})
    assert "'HMS_SIM_CONTROL_KEY'" in line
    assert "'HMS_SIM_CONTROL_KEY'" in refusal("simulate-100ms", "127.0.0.1", {"HMS_SIM_CONTROL_KEY": "short"})


def test_settings_refuse_two_100ms_at_once() -> None:
    with pytest.raises(ConfigError, match="'HMS_SIMULATOR'"):
        load_settings({"HUB_SECRET": SECRET, "HMS_SIMULATOR": "embedded", **REAL_100MS})
    with pytest.raises(ConfigError, match="'HMS_SIMULATOR'"):
        load_settings({"HMS_SIMULATOR": "on"})


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_binds_keep_the_embedded_mode(host: str) -> None:
    check_bind(load_settings({}), host)
    check_bind(load_settings({"HUB_SECRET": SECRET, "HMS_SIMULATOR": "embedded"}), host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "hub.example.com", None])
def test_a_production_configuration_binds_anywhere(host: str | None) -> None:
    check_bind(load_settings({"HUB_SECRET": SECRET, **REAL_100MS}), host)
    with pytest.raises(ConfigError, match="'HMS_API_BASE'"):
        check_bind(load_settings({"HUB_SECRET": SECRET}), host)


def test_sim_controls_want_the_control_key() -> None:
    simulator = start_simulator({"HMS_SIM_CONTROL_KEY": CONTROL_KEY})
    try:
        base = f"{simulator.http}/_sim"
        for method, path in (
            ("GET", "/events"),
            ("GET", "/config"),
            ("POST", "/faults"),
            ("DELETE", "/faults"),
        ):
            for auth in (
                {},
                {"Authorization": "Bearer wrong-key-0123456789"},
                {"Authorization": CONTROL_KEY},
            ):
                answer = httpx.request(method, f"{base}{path}", headers=auth, json={})
                assert answer.status_code == 401, (method, path, auth, answer.text)
                assert answer.json()["message"] == "control key required"
        key = {"Authorization": f"Bearer {CONTROL_KEY}"}
        assert httpx.get(f"{base}/events", headers=key).json() == {"events": []}
        assert httpx.delete(f"{base}/faults", headers=key).json() == {"faults": []}
        assert httpx.get(f"{base}/health").json()["ok"] is True  # readiness stays open
    finally:
        simulator.stop()
