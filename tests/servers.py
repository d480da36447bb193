"""Real servers for the tests: redis-server and the hub under uvicorn, on free loopback ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, *, timeout: float = 15.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def stop_process(proc: subprocess.Popen[bytes], *, timeout: float) -> int:
    """SIGTERM, then SIGKILL if it does not exit within `timeout`; its return code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@dataclass
class RedisServer:
    port: int
    proc: subprocess.Popen[bytes]
    workdir: str

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        stop_process(self.proc, timeout=5)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_redis(port: int | None = None) -> RedisServer:
    """A redis-server on a free port (or on `port`, to restart one where it was)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed; run `make test`, which installs it")
    port = port or free_port()
    workdir = tempfile.mkdtemp(prefix="proctorhub-redis-")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
            "--protected-mode",
            "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, proc=proc)
    return RedisServer(port, proc, workdir)


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

    def log(self) -> str:
        return Path(self.log_path).read_text(errors="replace") if self.log_path else ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 10.0) -> int:
        return stop_process(self.proc, timeout=timeout)


def start_simulator(env: Mapping[str, str], *, timeout: float = 20.0) -> HubProcess:
    """`proctorhub simulate-100ms` as its own process, shared by several hub nodes."""
    return start_hub(env, timeout=timeout, command="simulate-100ms", ready_path="/_sim/log")


def start_hub(
    env: Mapping[str, str], *, timeout: float = 20.0, command: str = "run", ready_path: str = "/readyz"
) -> HubProcess:
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "REDIS_", "HMS_"))}
    full_env.update(env)
    fd, log_path = tempfile.mkstemp(prefix="proctorhub-hub-", suffix=".log")
    with os.fdopen(fd, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", command, "--host", "127.0.0.1", "--port", str(port)],
            env=full_env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    hub = HubProcess(port, proc, dict(env), log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"hub exited with {proc.returncode}:\n{hub.log()}")
        try:
            if httpx.get(f"{hub.http}{ready_path}", timeout=1).status_code == 200:
                return hub
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    hub.kill()
    raise RuntimeError(f"hub not ready after {timeout}s:\n{hub.log()}")
