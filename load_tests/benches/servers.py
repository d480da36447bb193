"""The servers a bench measures: hub nodes (from the working tree or a commit) and the bare baseline.

Started with run/procs.py, so they are killed with the bench however it ends; a hub is ready when its
/readyz answers 200, the baseline when its port accepts.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from load_tests.run import procs


@dataclass
class Server:
    """A WebSocket server under test: a hub node or the bare baseline."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 20) -> list[str]:
        if not self.log_path or not self.log_path.exists():
            return []
        return self.log_path.read_text(errors="replace").splitlines()[-lines:]

    def log_problems(self, limit: int = 15) -> tuple[int, list[str]]:
        """Count of WARNING/ERROR/Traceback lines in the log, and the first few."""
        if not self.log_path or not self.log_path.exists():
            return 0, []
        bad = [
            line
            for line in self.log_path.read_text(errors="replace").splitlines()
            if re.search(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback", line)
        ]
        return len(bad), bad[:limit]

    def stop(self) -> int | None:
        procs.kill(self.proc, grace_s=15.0)
        return self.proc.returncode


def start_hub(
    name: str,
    secret: str,
    log_path: Path,
    *,
    redis_url: str | None = None,
    node_id: str | None = None,
    extra_env: dict[str, str] | None = None,
    root: Path = procs.ROOT,
) -> Server:
    """`python -m server run` (from the tree `root`) on a free port; returns when /readyz is 200."""
    port = procs.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "REDIS_", "HMS_"))}
    env.update(HUB_SECRET=secret, HUB_HEARTBEAT_S="20", LOG_LEVEL="INFO")
    if redis_url:
        env["REDIS_URL"] = redis_url
    if node_id:
        env["HUB_NODE_ID"] = node_id
    env.update(extra_env or {})
    if redis_url and "HMS_API_BASE" not in env:
        # a bench node on Redis without a shared simulator keeps its own (start_cluster shares one)
        env["HMS_SIMULATOR"] = "embedded"
    proc = procs.spawn(procs.server_argv(port), env, log_path, cwd=root)
    server = Server(name, port, proc, log_path, {"node_id": node_id or ""})
    procs.wait_ready(f"{server.http}/readyz", proc, log_path, f"hub {name}")
    return server


def start_bare(secret: str, log_path: Path) -> Server:
    """The bare `websockets` baseline server (load_tests/benches/bare_server.py) on a free port."""
    port = procs.free_port()
    env = dict(os.environ, BARE_SECRET=secret)
    argv = [sys.executable, "-m", "load_tests.benches.bare_server", "--port", str(port)]
    proc = procs.spawn(argv, env, log_path)
    procs.wait_for_port(port, proc)
    return Server("bare", port, proc, log_path)


def resolve_commit(rev: str) -> str:
    """The full id of the commit `rev` names (HEAD, a branch, a short id)."""
    return subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],
        cwd=procs.ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def snapshot(commit: str) -> Path:
    """The hub's source at `commit`, extracted with `git archive` (read-only on the repository)."""
    rev = subprocess.run(
        ["git", "rev-parse", "--short", f"{commit}^{{commit}}"],
        cwd=procs.ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    target = Path(tempfile.gettempdir()) / f"proctorhub-bench-{rev}"
    if not (target / "server" / "__main__.py").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", rev], cwd=procs.ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


@dataclass
class Cluster:
    """The hub as a deployment runs it: one node on the memory store (embedded simulator), or `nodes`
    nodes sharing a redis-server and one standalone 100ms simulator (never one simulator per node)."""

    nodes: list[Server]
    redis: procs.Redis | None = None
    simulator: Server | None = None

    @property
    def store(self) -> str:
        return "memory" if self.redis is None else "redis"

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        if self.simulator is not None:
            self.simulator.stop()
        if self.redis is not None:
            self.redis.stop()


def start_simulator(name: str, env: dict[str, str], log_path: Path) -> Server:
    """`proctorhub simulate-100ms` on a free port; ready when /_sim/health answers."""
    port = procs.free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "REDIS_", "HMS_"))}
    argv = procs.server_argv(port, "simulate-100ms")
    proc = procs.spawn(argv, {**base, "LOG_LEVEL": "WARNING", **env}, log_path)
    server = Server(name, port, proc, log_path)
    procs.wait_ready(f"{server.http}/_sim/health", proc, log_path, "simulator")
    return server


def start_cluster(
    name: str,
    secret: str,
    log_dir: Path,
    *,
    store: str,
    nodes: int = 1,
    extra_env: dict[str, str] | None = None,
    root: Path = procs.ROOT,
) -> Cluster:
    """Memory: one node. Redis: a redis-server, one simulator, and `nodes` nodes on them (the hubs
    from the tree `root`)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    if store == "memory":
        if nodes != 1:
            raise ValueError("the memory store runs one node")
        return Cluster(
            [
                start_hub(
                    f"{name}-memory", secret, log_dir / f"{name}-memory.log", extra_env=extra_env, root=root
                )
            ]
        )
    cluster = Cluster([], redis=procs.start_redis())
    try:
        hms = {
            "HMS_ACCESS_KEY": "bench" + os.urandom(6).hex(),
            "HMS_SECRET": os.urandom(24).hex(),
            "HMS_WEBHOOK_SECRET": os.urandom(12).hex(),
        }
        cluster.simulator = start_simulator(f"{name}-sim", hms, log_dir / f"{name}-sim.log")
        env = {
            **hms,
            "HMS_API_BASE": f"{cluster.simulator.http}/v2",
            "HMS_RECORDING_PREFIX": "100ms",  # where the simulator writes its recordings
            **(extra_env or {}),
        }
        for n in range(nodes):
            node = f"{name}-redis-{n + 1}"
            cluster.nodes.append(
                start_hub(
                    node,
                    secret,
                    log_dir / f"{node}.log",
                    redis_url=cluster.redis.url,
                    node_id=node,
                    extra_env=env,
                    root=root,
                )
            )
    except BaseException:
        cluster.stop()
        raise
    return cluster
