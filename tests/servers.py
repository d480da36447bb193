"""Real servers for the tests: redis-server and the hub under uvicorn, on free loopback ports."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from load_tests.run.procs import NotReady, free_port, server_argv, start_redis, wait_for_port, wait_ready
from load_tests.run.procs import Redis as RedisServer
from load_tests.run.procs import kill as stop_process

__all__ = [
    "HubProcess",
    "RedisServer",
    "free_port",
    "start_hub",
    "start_redis",
    "start_simulator",
    "stop_process",
    "wait_for_port",
]

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class HubProcess:
    """One `proctorhub run` process on a free port."""

    port: int
    proc: subprocess.Popen[bytes]
    env: dict[str, str] = field(default_factory=dict)
    log_path: str = ""

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def metrics_text(self) -> str:
        """GET /metrics with the hub's API key (it needs it when one is set)."""
        return httpx.get(f"{self.http}/metrics", headers=metrics_auth(self.env), timeout=5).text

    def log(self) -> str:
        return Path(self.log_path).read_text(errors="replace") if self.log_path else ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 10.0) -> int:
        return stop_process(self.proc, grace_s=timeout)


def metrics_auth(env: Mapping[str, str]) -> dict[str, str]:
    """The Authorization header /metrics wants from a hub started with `env` (none without a key)."""
    key = env.get("HUB_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


def start_simulator(env: Mapping[str, str], *, timeout: float = 20.0) -> HubProcess:
    """`proctorhub simulate-100ms` as its own process, shared by several hub nodes."""
    return start_hub(env, timeout=timeout, command="simulate-100ms", ready_path="/_sim/health")


def start_hub(
    env: Mapping[str, str],
    *,
    timeout: float = 20.0,
    command: str = "run",
    ready_path: str = "/readyz",
    port: int | None = None,
) -> HubProcess:
    """A hub on a free port, or on `port` (a restart where open pages expect it)."""
    port = port or free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "REDIS_", "HMS_"))}
    full_env.update(env)
    fd, log_path = tempfile.mkstemp(prefix="proctorhub-hub-", suffix=".log")
    with os.fdopen(fd, "wb") as log:
        proc = subprocess.Popen(
            server_argv(port, command), env=full_env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
    hub = HubProcess(port, proc, dict(env), log_path)
    try:
        wait_ready(f"{hub.http}{ready_path}", proc, Path(log_path), command, timeout)
    except NotReady:
        hub.kill()
        raise
    return hub
