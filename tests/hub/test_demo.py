"""`proctorhub demo` as a newcomer runs it: the hub on the given port with a small live exam of simulated
users; the links it prints work (the page's WebSocket login gets `hello`, the admin token reads the event),
candidates appear, and Ctrl-C (SIGINT) stops the hub and the workers, exit 0."""

from __future__ import annotations

import asyncio
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from tests.client import close_all, login
from tests.servers import ROOT, free_port

LINK = re.compile(r"^\s*(proctor|admin|review):\s+(http://127\.0\.0\.1:(\d+)/(\w+)#token=([\w.-]+))\s*$")


class Output:
    """The demo's stdout, line by line, read by a thread so the test can wait with a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert proc.stdout is not None
        self.stream = proc.stdout
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.stream:
            self.lines.put(line)

    def until(self, done: re.Pattern[str], count: int, timeout: float) -> list[re.Match[str]]:
        """The first `count` lines matching `done`, read within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            matches = [m for line in self.seen if (m := done.match(line))]
            if len(matches) >= count:
                return matches[:count]
            try:
                self.seen.append(self.lines.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        raise AssertionError(f"no {count} lines matching {done.pattern} in {timeout} s: {self.seen}")

    def rest(self) -> str:
        while True:
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                return "".join(self.seen)


@pytest.fixture
def demo() -> Iterator[tuple[subprocess.Popen[str], int, Output]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "demo", "--port", str(port), "--duration-s", "55"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = Output(proc)
    yield proc, port, output
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    output.reader.join(timeout=5)
    output.stream.close()


async def online_candidates(base: str, admin_token: str, at_least: int, timeout: float) -> int:
    """Poll the event as the admin link's token sees it until `at_least` candidates are online."""
    deadline = time.monotonic() + timeout
    online = 0
    async with httpx.AsyncClient(timeout=5.0, trust_env=False) as http:
        while time.monotonic() < deadline:
            answer = await http.get(
                f"{base}/api/v1/events/demo", headers={"Authorization": f"Bearer {admin_token}"}
            )
            assert answer.status_code == 200, answer.text
            online = answer.json()["counts"]["online"]
            if online >= at_least:
                return int(online)
            await asyncio.sleep(0.5)
    raise AssertionError(f"{online} candidates online after {timeout} s, wanted {at_least}")


async def test_demo_links_work_candidates_appear_and_ctrl_c_stops_everything(
    demo: tuple[subprocess.Popen[str], int, Output],
) -> None:
    proc, port, output = demo
    found = {m[1]: m for m in output.until(LINK, 3, timeout=40)}
    assert set(found) == {"proctor", "admin", "review"}
    assert all(int(m[3]) == port and m[4] == page for page, m in found.items())
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(timeout=5.0, trust_env=False) as http:
        health = await http.get(f"{base}/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        page = await http.get(found["proctor"][2].split("#")[0])
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    _client, hello = await login(f"ws://127.0.0.1:{port}/ws", found["proctor"][5])
    assert (hello["data"]["role"], hello["data"]["event_id"]) == ("proctor", "demo")
    await close_all()
    assert await online_candidates(base, found["admin"][5], at_least=3, timeout=30) >= 3
    output.until(re.compile(r"^\[[\d:]+\] sitting 1 at .* online"), 1, timeout=15)

    started = psutil.Process(proc.pid).children(recursive=True)  # the hub and the worker
    assert len(started) >= 2, [p.cmdline() for p in started]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0, output.rest()
    assert "demo stopped" in output.rest()
    _gone, alive = psutil.wait_procs(started, timeout=10)
    assert not alive, [p.pid for p in alive]
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
