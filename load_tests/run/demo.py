"""`proctorhub demo`: something to watch on the first run.

Starts `proctorhub run` on 127.0.0.1:8000 (`--port`) on its embedded defaults (memory store, the 100ms
simulator in-process) with a HUB_SECRET made here, so it can mint links; creates the event `demo`;
and drives a small live exam of the load tester's simulated users against it (scenario/demo.toml):
sitting after sitting of candidates arriving, dropping and coming back, a lost camera, a dropped
recording, and simulated proctors that leave rooms for a human. It prints the proctor, admin and
review links (tokens in the fragment, 12 h), then one status line every few seconds, until Ctrl-C,
SIGTERM or `--duration-s`; then the users leave, the hub stops, and it exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from load_tests.run import procs
from load_tests.run.faults import Armory
from load_tests.run.target import Target, TargetError, check, create_event, start_embedded
from load_tests.scenario import schedule
from load_tests.scenario.loading import ScenarioError, load
from load_tests.scenario.model import Scenario
from load_tests.users.swarm import swarm_main
from load_tests.users.worker_pool import WorkerPool
from server.auth import mint_session

EVENT_ID = "demo"
LINK_TTL_S = 12 * 3600
LEAD_S = 3.0  # the first sitting starts this long after the workers have their plans
STATUS_EVERY_S = 5.0
STOP_LIMIT_S = 45.0  # clean-up longer than this: kill what is left


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="proctorhub demo", description=__doc__.split("\n\n")[0])
    root.add_argument("--port", type=int, default=8000, help="the hub's port on 127.0.0.1 (8000)")
    root.add_argument(
        "--duration-s", type=float, default=None, help="stop after this many seconds (default: at Ctrl-C)"
    )
    root.add_argument("--scenario", default="demo", help="the exam of one sitting (scenario/demo.toml)")
    return root


def port_taken(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def links(base: str, secret: str, now: float) -> dict[str, str]:
    """The pages a newcomer opens, each with a session token of event `demo` in its fragment."""

    def token(user_id: str, role: str, name: str) -> str:
        return mint_session(
            secret,
            user_id=user_id,
            event_id=EVENT_ID,
            role=role,  # type: ignore[arg-type]
            now=now,
            ttl_s=LINK_TTL_S,
            name=name,
        )

    admin = token("admin-1", "admin", "Admin 1")
    return {
        "proctor": f"{base}/proctor#token={token('proctor-1', 'proctor', 'Proctor 1')}",
        "admin": f"{base}/admin#token={admin}",
        "review": f"{base}/review#token={admin}",
    }


def intro(s: Scenario, base: str, pages: dict[str, str], log: Path) -> str:
    """What runs and where to look, from the scenario's own numbers."""
    per_proctor = max(1, s.proctor_load // s.room_size)
    simulated_rooms = min(s.rooms_needed, s.proctors * per_proctor)
    churn = round(s.churn.share * s.candidates)
    camera_s = sum(s.faults.camera_loss_s) / 2
    return "\n".join(
        [
            f"\nproctorhub demo: the hub on {base} (memory store, 100ms simulator in-process), "
            f"event '{EVENT_ID}'.",
            f"Open these in a browser (valid {LINK_TTL_S // 3600} h):",
            *(f"  {page + ':':9}{url}" for page, url in pages.items()),
            f"Every {(s.exam_s + s.drain_s) / 60:.1f} min a sitting: {s.candidates} candidates arrive over "
            f"{s.arrival_span_s:g} s in rooms of {s.room_size}; {churn} lose the network and come back, "
            f"{s.faults.camera_loss} loses its camera for ~{camera_s:.0f} s, {s.faults.recording_drop} "
            "recording is dropped;",
            f"{s.proctors} simulated proctors hold {simulated_rooms} of the {s.rooms_needed} rooms: the "
            "others wait for you at the proctor link.",
            f"Ctrl-C stops it all. The hub's log: {log}\n",
        ]
    )


def status(
    sitting: int, into_s: float, snaps: list[dict[str, Any]], alerts: dict[str, tuple[str, str]]
) -> str:
    """One short line: the hub's own counts (what the admin page shows) and the simulated side."""
    stats = next((s["observer"] for s in snaps if s.get("observer")), None)
    simulated = sum(s["proctors_connected"] for s in snaps)
    head = f"[{time.strftime('%H:%M:%S')}] sitting {sitting} at {int(into_s // 60)}:{int(into_s % 60):02d}"
    if not stats:
        return f"{head} | waiting for the hub's first stats"
    g = stats.get
    open_now = sum(1 for _, state in alerts.values() if state == "open")
    latest = f", latest {next(reversed(alerts.values()))[0]}" if alerts else ""
    return (
        f"{head} | {g('online', 0)} online, {g('reconnecting', 0)} reconnecting, {g('offline', 0)} offline, "
        f"{g('finished', 0)} finished | {g('rooms', 0)} rooms, {g('unwatched_rooms', 0)} unwatched | "
        f"{g('proctors', 0)} proctors ({simulated} simulated) | {open_now} alerts open, "
        f"{len(alerts)} so far{latest}"
    )


class Demo:
    """The hub, the workers and the sittings; `clean_up` stops whatever was started."""

    def __init__(self, scenario: Scenario, port: int, duration_s: float | None) -> None:
        self.s = scenario
        self.port = port
        self.duration_s = duration_s
        self.workdir = Path(tempfile.mkdtemp(prefix="proctorhub-demo-"))
        self.secret = secrets.token_urlsafe(32)
        self.target: Target | None = None
        self.pool: WorkerPool | None = None
        self.armory: Armory | None = None
        self.alerts: dict[str, tuple[str, str]] = {}  # alert_id -> ("kind (candidate)", state), as opened

    async def run(self, stop: asyncio.Event) -> None:
        s = self.s
        env = {"HUB_PRESENCE_GRACE_S": f"{s.hub.grace_s:g}", **dict(s.hub.env)}
        self.target = target = await asyncio.to_thread(
            start_embedded, self.port, self.secret, self.workdir, env
        )
        if stop.is_set():
            return
        await asyncio.to_thread(check, target)
        await asyncio.to_thread(create_event, target, s, EVENT_ID)
        print(intro(s, target.hub_url, links(target.hub_url, self.secret, time.time()), target.logs[0]))
        candidates, proctors = schedule.build(s)
        workers = s.workers or 1
        self.pool = pool = WorkerPool(workers, swarm_main, "demo-worker")
        self.armory = Armory(target.sim_url)
        await asyncio.to_thread(self.armory.arm, s, candidates)
        t0, period = time.time() + LEAD_S, s.exam_s + s.drain_s
        config = {
            "ws_url": target.ws_url,
            "hub_url": target.hub_url,
            "media_url": target.sim_url,
            "event_id": EVENT_ID,
            "secret": self.secret,
            "session_ttl_s": 86_400,
            "t0": t0,
            "keep_open_s": s.drain_s,
        }
        cands, procs_ = schedule.deal(candidates, workers), schedule.deal(proctors, workers)
        starts = [
            {
                "config": {**config, "seed": i},
                "candidates": cands[i],
                "proctors": procs_[i],
                "observer": i == 0,
            }
            for i in range(workers)
        ]
        await pool.each("start", starts, timeout=60)
        end = None if self.duration_s is None else time.monotonic() + self.duration_s
        added, next_status = 1, 0.0  # sittings handed to the workers; the next is added as one begins
        while not stop.is_set() and (end is None or time.monotonic() < end):
            if target.hub_proc is not None and target.hub_proc.poll() is not None:
                raise TargetError(f"the hub exited with {target.hub_proc.returncode} (log: {target.logs[0]})")
            now = time.time()
            sitting = max(0, int((now - t0) // period)) + 1
            if sitting >= added:
                await self.add_sitting(added, period)
                added += 1
            if now >= next_status:
                next_status = now + STATUS_EVERY_S
                snaps = await pool.each("snapshot", [{}] * len(pool), timeout=30)
                for snap in snaps:
                    for _, alert in snap["new_alerts"]:  # the observer's (an admin): every alert
                        who = alert.get("candidate_id")
                        text = f"{alert.get('kind')}" + (f" ({who})" if who else "")
                        key, state = str(alert.get("alert_id")), str(alert.get("state"))
                        if state == "open":  # the latest opened last (an id may open again)
                            self.alerts.pop(key, None)
                        self.alerts[key] = (text, state)
                print(
                    status(sitting, max(0.0, now - t0 - (sitting - 1) * period), snaps, self.alerts),
                    flush=True,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    async def add_sitting(self, index: int, period: float) -> None:
        """Sitting `index` (from 0) to the workers: new candidates, a period later per sitting."""
        if self.pool is None or self.armory is None:
            raise RuntimeError("Expected started workers, but got none")
        plans, _ = schedule.build(replace(self.s, seed=self.s.seed + index))
        plans = schedule.shifted(plans, index * period, f"s{index + 1}-")
        await asyncio.to_thread(self.armory.arm, self.s, plans)
        hands = schedule.deal(plans, len(self.pool))
        await self.pool.each("add", [{"candidates": hand} for hand in hands], timeout=60)

    async def clean_up(self) -> None:
        """The users leave (the hub sees them go), the workers exit, the hub stops: in that order."""
        if self.pool is not None:
            with contextlib.suppress(Exception):
                await self.pool.each("stop", [{}] * len(self.pool), timeout=20)
            self.pool.stop()
            self.pool = None
        if self.target is not None:
            await asyncio.to_thread(self.target.stop)
            self.target = None


def _watchdog(seconds: float) -> threading.Timer:
    def fire() -> NoReturn:
        print(f"proctorhub demo: still stopping after {seconds:.0f} s; killing what is left", file=sys.stderr)
        procs.kill_all()
        os._exit(1)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    return timer


async def _main(demo: Demo) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    code = 0
    try:
        await demo.run(stop)
    except (TargetError, RuntimeError, TimeoutError) as exc:
        print(f"proctorhub demo: {exc}", file=sys.stderr)
        code = 1
    finally:
        print("stopping: the simulated users leave, then the hub stops", flush=True)
        timer = _watchdog(STOP_LIMIT_S)
        timer.start()
        await demo.clean_up()
        timer.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if code == 0:
        shutil.rmtree(demo.workdir, ignore_errors=True)
    print("demo stopped" + ("" if code == 0 else f"; the hub's log is in {demo.workdir}"), flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        scenario = load(args.scenario)
    except ScenarioError as exc:
        print(f"proctorhub demo: {exc}", file=sys.stderr)
        return 2
    if port_taken(args.port):
        print(
            f"proctorhub demo: 127.0.0.1:{args.port} is taken (another hub?); stop it or use --port",
            file=sys.stderr,
        )
        return 2
    try:
        return asyncio.run(_main(Demo(scenario, args.port, args.duration_s)))
    finally:
        procs.kill_all()


if __name__ == "__main__":
    sys.exit(main())
