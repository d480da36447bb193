"""One load-test run, start to verdict: target, event, faults, workers, live view, drain, report.

    target (started or given, checked) -> event created -> faults armed on the simulator
    -> workers start their users at t0 -> once a second: snapshots, coverage, progress
    -> exam over: drain until every expected alert came (or drain_s) -> users stop, records collected
    -> faults disarmed, processes stopped -> report (JSON + HTML) -> exit code

Bounded: a watchdog ends everything at exam + drain + a start-up allowance. Ctrl-C (SIGINT) or
SIGTERM cancels the run; the same clean-up then stops the workers and every process started here.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from load_tests.judge import assemble
from load_tests.report import html_report, json_report
from load_tests.run import procs
from load_tests.run.drive import Collected, drive
from load_tests.run.faults import Armory
from load_tests.run.observe import Sampler
from load_tests.run.progress import Progress
from load_tests.run.target import (
    Target,
    TargetError,
    check,
    check_hello,
    create_event,
    session_token,
    start_local,
)
from load_tests.scenario import schedule
from load_tests.scenario.model import Scenario
from load_tests.users.swarm import swarm_main
from load_tests.users.worker_pool import WorkerPool

START_ALLOWANCE_S = 90.0  # start-up and clean-up, on top of exam + drain, before the watchdog fires
LEAD_S = 5.0  # workers get their plans this long before t0
EXIT_OK, EXIT_GOALS, EXIT_SETUP, EXIT_INTERRUPTED = 0, 1, 2, 130


@dataclass
class RunOptions:
    scenario: Scenario
    hub_url: str | None = None
    sim_url: str | None = None
    api_key: str | None = None
    secret: str | None = None
    out_dir: Path = procs.RESULTS
    profile_hub: str | None = None  # "sample" (hub_profiler.py) or "cprofile"
    progress: str = "auto"


def event_id_for(scenario: Scenario) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]", "-", scenario.name)[:40]
    return f"lt-{name}-{time.strftime('%H%M%S')}-{secrets.token_hex(2)}"


def _watchdog(seconds: float) -> threading.Timer:
    def fire() -> NoReturn:
        print(
            f"proctorhub loadtest: hard limit of {seconds:.0f} s reached; stopping everything",
            file=sys.stderr,
        )
        procs.kill_all()
        os._exit(3)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    return timer


def run(opts: RunOptions) -> int:
    """Run the scenario; exit code 0 every goal met, 1 a goal missed, 2 set-up failed, 130 interrupted."""
    scenario = opts.scenario
    timer = _watchdog(scenario.exam_s + scenario.drain_s + START_ALLOWANCE_S + scenario.candidates / 200)
    try:
        return asyncio.run(_run(opts))
    finally:
        timer.cancel()
        procs.kill_all()


async def _run(opts: RunOptions) -> int:
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    interrupted = False

    def interrupt() -> None:
        nonlocal interrupted
        interrupted = True
        if main is not None:
            main.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt)
    session = Session(opts)
    try:
        return await session.run()
    except TargetError as exc:
        print(f"proctorhub loadtest: {exc}", file=sys.stderr)
        return EXIT_SETUP
    except asyncio.CancelledError:
        if not interrupted:
            raise
        print(
            "proctorhub loadtest: interrupted; stopping the workers and every process it started",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    finally:
        session.clean_up()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


class Session:
    """The resources of one run, so that clean-up finds them whatever point the run reached."""

    def __init__(self, opts: RunOptions) -> None:
        self.opts = opts
        self.scenario = opts.scenario
        self.run_dir = (
            opts.out_dir
            / f"{re.sub(r'[^A-Za-z0-9._-]', '-', self.scenario.name)}-{time.strftime('%Y%m%d-%H%M%S')}"
        )
        self.target: Target | None = None
        self.pool: WorkerPool | None = None
        self.armory: Armory | None = None
        self.progress = Progress(opts.progress)
        self.stopped: dict[str, int] = {}

    def _target(self) -> Target:
        o = self.opts
        if o.hub_url:
            if not o.sim_url:
                raise TargetError("--hub needs --simulator (the 100ms simulator's URL) too")
            if not (o.api_key or o.secret):
                raise TargetError("--hub needs --api-key or --secret to create the event and sessions")
            return Target(
                hub_url=o.hub_url.rstrip("/"),
                sim_url=o.sim_url.rstrip("/"),
                secret=o.secret,
                api_key=o.api_key,
            )
        profile = None
        if o.profile_hub:
            profile = self.run_dir / ("hub.prof" if o.profile_hub == "cprofile" else "hub-profile.json")
        hub = self.scenario.hub
        what = "the hub" if hub.nodes == 1 else f"{hub.nodes} hub nodes"
        self.progress.note(f"starting {what} ({hub.store} store, {hub.simulator} simulator) on 127.0.0.1")
        return start_local(self.scenario, self.run_dir, profile)

    async def run(self) -> int:
        s = self.scenario
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.target = target = self._target()
        if s.faults.node_kill_at_s and len(target.hub_procs) < 2:
            raise TargetError(
                "faults.node_kill_at_s needs a cluster started here ([hub] nodes >= 2, no --hub)"
            )
        found = check(target)
        event_id = event_id_for(s)
        create_event(target, s, event_id)
        hello = await check_hello(target, session_token(target, event_id, "loadtest-probe", "admin", 600))
        self.progress.note(f"target {target.hub_url} (node {hello['node']}), event {event_id}")
        candidates, proctors = schedule.build(s)
        self.armory = Armory(target.sim_url)
        armed = self.armory.arm(s, candidates)
        workers = s.workers or os.cpu_count() or 1
        self.pool = pool = WorkerPool(workers, swarm_main, "loadtest-worker")
        t0 = time.time() + LEAD_S
        config = {
            "ws_url": target.ws_url,
            "ws_urls": target.ws_urls,
            "hub_url": target.hub_url,
            "media_url": target.sim_url,
            "event_id": event_id,
            "secret": target.secret,
            "api_key": target.api_key,
            "session_ttl_s": int(min(86_400, s.exam_s + s.drain_s + 3600)),
            "t0": t0,
            "keep_open_s": s.drain_s,
        }
        cands, procs_ = schedule.deal(candidates, workers), schedule.deal(proctors, workers)
        await pool.each(
            "start",
            [
                {
                    "config": {**config, "seed": s.seed * 1000 + i},
                    "candidates": cands[i],
                    "proctors": procs_[i],
                    "observer": i == 0,
                }
                for i in range(workers)
            ],
            timeout=60,
        )
        observer = Sampler(
            target.urls, procs.metrics_auth(target.api_key), target.pids(), [os.getpid(), *pool.pids]
        )
        context = {
            "event_id": event_id,
            "plans": candidates,
            "found": found,
            "hello": hello,
            "armed": armed,
            "t0": t0,
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(t0)),
            "workers": workers,
        }
        collected = await drive(s, pool, self.armory, target, self.progress, observer, context)
        return self.finish(observer, context, collected)

    def finish(self, observer: Sampler, ctx: dict[str, Any], got: Collected) -> int:
        """The report (JSON, HTML, the summary printed) from what was collected; the exit code."""
        s, target = self.scenario, self.target
        if target is None:
            raise RuntimeError("Expected a target, but got none")
        notes = (
            []
            if observer.has_process_metrics
            else ["the hub's /metrics has no process_* samples: RSS/CPU from /proc"]
        )
        unanswered = sum(1 for p in got.parts for f in p["media_failures"] if f["status"] < 400)
        if unanswered:
            notes.append(
                f"{unanswered} media-plane calls got no answer within 15 s: the simulator, not the hub, "
                "was the limit there (they are not counted as failed joins)"
            )
        if got.hub_report is None:
            notes.append(
                "the hub has no report endpoint (GET /api/v1/events/{e}/report): "
                "recordings per the tester only"
            )
        report = assemble.build(
            scenario=s,
            target={
                "hub_url": target.hub_url,
                "sim_url": target.sim_url,
                "local": target.local,
                "event_id": ctx["event_id"],
                "node": ctx["hello"].get("node"),
                "nodes": target.urls,
            },
            started=ctx["started"],
            t0=ctx["t0"],
            parts=got.parts,
            coverage=got.coverage,
            timeline=got.live.timeline,
            samples=observer.series,
            rates=observer.rates(),
            sim_log=got.sim_log,
            armed=ctx["armed"],
            hub_report=got.hub_report,
            workers=ctx["workers"],
            interrupted=False,
            notes=notes,
            kill=ctx.get("kill"),
            timelines=got.timelines,
        )
        self.clean_up()  # stop the hub now: its profile is written when it exits
        report["processes_stopped"] = self.stopped
        if (profile := json_report.hub_profile(target.profile)) is not None:
            report["hub_profile"] = profile
        path = json_report.write(report, self.run_dir)
        page = html_report.write(report, self.run_dir / "report.html")
        print(json_report.summary(report, path, page))
        return EXIT_OK if report["verdict"]["ok"] else EXIT_GOALS

    def clean_up(self) -> None:
        self.progress.close()
        if self.pool is not None:
            self.pool.stop()
            self.pool = None
        if self.armory is not None:
            self.armory.disarm()
        if self.target is not None:
            self.stopped = self.target.stop()
