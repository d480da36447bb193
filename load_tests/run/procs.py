"""Child processes of a run or a bench: hubs, simulators, redis-server; all killed on exit.

Every child is started from the main thread with PR_SET_PDEATHSIG, so even a SIGKILLed
bench takes its children with it; `kill_all` (try/finally and atexit) is the ordinary path.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from load_tests.users.worker_pool import die_with_parent, raise_nofile

LOAD_TESTS = Path(__file__).resolve().parent.parent
ROOT = LOAD_TESTS.parent  # the repository: servers are started from here
RESULTS = LOAD_TESTS / "results"  # gitignored
_CHILDREN: list[subprocess.Popen[bytes]] = []
_GROUPS: set[int] = set()  # children that lead their own process group


def _child_setup() -> None:
    raise_nofile()
    die_with_parent()


PORT_FLOOR = 10_000
"""Servers' ports are picked from here up to the kernel's ephemeral range."""
_given: set[int] = set()  # ports this process handed out: never twice

BROWSER_BLOCKED_PORTS = frozenset(
    {1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, *range(6665, 6670), 6679, 6697, 10080}
)
"""The Fetch standard's "bad ports" above 1024, which Chromium refuses (`ERR_UNSAFE_PORT`): a
hub picked on 10080 failed every browser test of the run."""


def free_port() -> int:
    """A loopback port nothing listens on, for a server about to start there.

    Picked below the kernel's ephemeral range: a port the kernel hands out for a bind to port 0 is
    one it also hands to client sockets, and a connection made between the pick and the server's
    bind (tests and load tests open thousands) took it: "address already in use". pytest-xdist
    workers pick from blocks of their own, so two workers never pick the same port."""
    low, high = port_block()
    for _ in range(500):
        port = random.randrange(low, high)
        if port in _given or port in BROWSER_BLOCKED_PORTS:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:  # in use, or still in TIME_WAIT: another
                continue
        _given.add(port)
        return port
    with socket.socket() as sock:  # the block is full: the kernel's pick
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_block() -> tuple[int, int]:
    """[low, high) of the ports this process picks from."""
    try:
        ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32_768
    low, high = PORT_FLOOR, max(ephemeral, PORT_FLOOR + 1_000)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ...
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if workers > 1 and worker.startswith("gw") and worker[2:].isdigit():
        size = (high - low) // workers
        low += int(worker[2:]) % workers * size
        high = low + size
    return low, high


def wait_for_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 20.0) -> None:
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


def server_argv(port: int, command: str = "run") -> list[str]:
    """`proctorhub run` (or `simulate-100ms`) on 127.0.0.1:`port`, as this Python runs it."""
    return [sys.executable, "-m", "server", command, "--host", "127.0.0.1", "--port", str(port)]


class NotReady(RuntimeError):
    """A started server exited, or did not answer its health URL in time; the message has its log's tail."""


def wait_ready(
    url: str, proc: subprocess.Popen[bytes], log_path: Path | None, what: str, timeout: float = 30.0
) -> None:
    """Until `url` (a /readyz or /health) answers 200; NotReady if `proc` exits first or time runs out."""

    def tail() -> str:
        exists = log_path is not None and log_path.exists()
        return log_path.read_text(errors="replace")[-2000:] if exists else ""  # type: ignore[union-attr]

    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0, trust_env=False, follow_redirects=False) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise NotReady(f"the {what} exited with {proc.returncode} at start-up:\n{tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if http.get(url).status_code == 200:
                    return
            time.sleep(0.1)
    raise NotReady(f"the {what} was not ready after {timeout:.0f} s (log: {log_path}):\n{tail()}")


def spawn(
    argv: list[str],
    env: dict[str, str] | None,
    log_path: Path | None,
    cwd: Path = ROOT,
    new_session: bool = False,
) -> subprocess.Popen[bytes]:
    if log_path:
        log_path.parent.mkdir(parents=True, exist_ok=True)
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_child_setup,
            start_new_session=new_session,
        )
    finally:
        if log_path:
            out.close()  # type: ignore[union-attr]
    _CHILDREN.append(proc)
    return proc


def kill(proc: subprocess.Popen[bytes], grace_s: float = 5.0) -> int:
    """SIGTERM, then SIGKILL after `grace_s`; the return code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    with contextlib.suppress(ValueError):
        _CHILDREN.remove(proc)
    return proc.returncode


def spawn_group(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """A child in its own session and process group: a Ctrl-C in the terminal reaches only us, and
    `stop_group` ends the child with everything it started."""
    proc = spawn(argv, env, log_path, new_session=True)
    _GROUPS.add(proc.pid)
    return proc


def stop_group(proc: subprocess.Popen[bytes], grace_s: float = 15.0) -> int:
    """SIGTERM to the child's process group, SIGKILL to it after `grace_s`; the child's return code."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # whatever the child left behind in its group
    with contextlib.suppress(ValueError):
        _CHILDREN.remove(proc)
    return proc.returncode if proc.returncode is not None else -9


def kill_all() -> None:
    """Kill every child still registered (atexit and the bench's finally)."""
    for proc in list(_CHILDREN):
        if proc.pid in _GROUPS:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        _CHILDREN.remove(proc)


atexit.register(kill_all)


@dataclass
class Redis:
    port: int
    proc: subprocess.Popen[bytes]
    workdir: str

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self, *, keep_data: bool = False) -> None:
        """SIGTERM (a persistent Redis writes its AOF out first); `keep_data` keeps its folder."""
        kill(self.proc)
        if not keep_data:
            shutil.rmtree(self.workdir, ignore_errors=True)


def start_redis(port: int | None = None, *, appendonly: bool = False, workdir: str | None = None) -> Redis:
    """A redis-server on a free loopback port (or on `port`, to restart one where it was).

    `appendonly`: persistence on (AOF, fsync every second), so data survives a restart on the same
    `workdir` (pass the stopped server's `workdir`)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed; scripts/test installs it")
    port = port or free_port()
    workdir = workdir or tempfile.mkdtemp(prefix="proctorhub-bench-redis-")
    aof = "yes" if appendonly else "no"
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", aof]
    proc = spawn([*argv, "--dir", workdir, "--maxclients", "10000"], None, None)
    wait_for_port(port, proc)
    return Redis(port, proc, workdir)


# ---------------------------------------------------------------- /proc readings


def rss_kib(pid: int) -> int:
    """VmRSS of a process in KiB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def machine_busy_s() -> float:
    """CPU seconds all processes of the machine have used in user and system mode (/proc/stat).

    Interrupt and softirq time (loopback traffic lands there) is left out: no process is charged it.
    """
    with open("/proc/stat") as stat:
        user, nice, system = (int(x) for x in stat.readline().split()[1:4])
    return (user + nice + system) / os.sysconf("SC_CLK_TCK")


def metrics_auth(api_key: str | None) -> dict[str, str]:
    """The header /metrics wants when the hub has an API key (HUB_API_KEY); none without one."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def hub_metrics(port: int, extra: tuple[str, ...] = (), api_key: str | None = None) -> dict[str, float]:
    """The hub's /metrics samples that say whether sockets were lost, and those starting with
    one of `extra` (`_created` samples left out); empty if unreachable."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", headers=metrics_auth(api_key), timeout=5).text
    except httpx.HTTPError:
        return {}
    wanted = (
        "proctorhub_connections{",
        "proctorhub_closes_total",
        "proctorhub_send_queue_drops_total",
        "proctorhub_auth_failures_total",
        "proctorhub_handler_errors_total",
        "proctorhub_fanout_errors_total",
        *extra,
    )
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(wanted) and "_created" not in line:
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out
