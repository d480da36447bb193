"""A worker process of `proctorhub loadtest`: one asyncio loop running its share of simulated users.

Driven by the main process over a pipe (worker_pool.WorkerPool), one command at a time:
`start` (config and plans: the users begin on their schedule), `add` (more candidates on the same
clock: `proctorhub demo`'s next sitting), `snapshot` (once a second: counts,
the rooms its proctors watch, where its connected candidates sit, new alerts), `stop` (everyone
closes), `collect` (every record, for the report). SIGINT is ignored here: the main process
decides when workers stop (a Ctrl-C in the terminal reaches the whole process group).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import signal
import time
from multiprocessing.connection import Connection
from typing import Any

from load_tests.scenario.schedule import CandidatePlan, ProctorPlan
from load_tests.users.candidate import JOINED, SimCandidate
from load_tests.users.proctor import Observer, SimProctor
from load_tests.users.sim_user import Records, Shared, SimUser
from load_tests.users.token_watch import TokenWatch
from load_tests.users.worker_pool import worker_setup


class Swarm:
    def __init__(self) -> None:
        self.records = Records()
        self.candidates: list[SimCandidate] = []
        self.proctors: list[SimProctor] = []
        self.observer: Observer | None = None
        self.tasks: dict[SimUser, asyncio.Task[None]] = {}  # each user's run
        self.watch = TokenWatch(lambda: [*self.candidates, *self.proctors])
        self.shared: Shared | None = None
        self.finished_before = 0  # candidates let go by `add` once finished

    async def start(
        self,
        config: dict[str, Any],
        candidates: list[CandidatePlan],
        proctors: list[ProctorPlan],
        observer: bool,
    ) -> dict[str, Any]:
        shared = self.shared = Shared(config, self.records, self.watch.log)
        loop = asyncio.get_running_loop()
        self.candidates = [SimCandidate(shared, plan) for plan in candidates]
        self.proctors = [SimProctor(shared, plan) for plan in proctors]
        users: list[SimCandidate | SimProctor | Observer] = [*self.candidates, *self.proctors]
        if observer:
            self.observer = Observer(shared)
            users.append(self.observer)
        self.tasks = {user: loop.create_task(self._guard(user.run())) for user in users}
        await self.watch.start()
        return {"users": len(users)}

    async def add(self, candidates: list[CandidatePlan]) -> dict[str, Any]:
        """More candidates, their plans counted from the same t0; finished ones are let go first, so a
        swarm that keeps getting candidates (the demo, for hours) does not keep every one it had."""
        if self.shared is None:
            raise RuntimeError("Expected a started swarm, but got add before start")
        kept = [
            c for c in self.candidates if not (c.finished and (c not in self.tasks or self.tasks[c].done()))
        ]
        self.finished_before += len(self.candidates) - len(kept)
        self.candidates = kept
        self.tasks = {user: task for user, task in self.tasks.items() if not task.done()}
        loop = asyncio.get_running_loop()
        new = [SimCandidate(self.shared, plan) for plan in candidates]
        self.candidates += new
        self.tasks.update({c: loop.create_task(self._guard(c.run())) for c in new})
        return {"users": len(new)}

    async def _guard(self, job: Any) -> None:
        try:
            await job
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in a simulated user must not end the worker
            self.records.error(f"user task: {type(exc).__name__}: {exc}")

    async def snapshot(self) -> dict[str, Any]:
        rooms: collections.Counter[str] = collections.Counter()
        connected = assigned = joined = 0
        for c in self.candidates:
            if c.is_open and not c.finished:
                connected += 1
                if c.room_id is not None:
                    assigned += 1
                    rooms[c.room_id] += 1
            joined += c.peer_state == JOINED
        watched: set[str] = set()
        for p in self.proctors:
            watched |= p.watching
        log, records = self.watch.log, self.records
        new_alerts, records.new_alerts = records.new_alerts, []
        return {
            "t": time.time(),
            "candidates_connected": connected,
            "candidates_assigned": assigned,
            "candidates_finished": self.finished_before + sum(c.finished for c in self.candidates),
            "media_joined": joined,
            "proctors_connected": sum(p.is_open for p in self.proctors),
            "candidate_rooms": dict(rooms),
            "rooms_watched": sorted(watched),
            "refreshes": log.refreshes,
            "acks": log.acks,
            "expired_client_s": log.expired_client_s,
            "media_failures": len(records.media_failures),
            "errors": sum(records.errors.values()),
            "reconnects": records.counts["reconnects"],
            "new_alerts": new_alerts,
            "backfill_pending": sum(1 for c in self.candidates if not c.stopped and c.copy.pending),
            "backfill_archived": len(records.backfill),
            "observer": dict(self.observer.stats) if self.observer else None,
        }

    async def stop(self) -> dict[str, Any]:
        # finished pages still open for the hub's backfill requests (neither released nor timed out)
        self.records.counts["backfill_pages_open_at_stop"] += sum(
            1 for c in self.candidates if c.finished and not c.stopped
        )
        for user in [*self.candidates, *self.proctors, *([self.observer] if self.observer else [])]:
            user.stop(1000)
            if isinstance(user, SimCandidate) and not user.finished and user in self.tasks:
                self.tasks[user].cancel()  # stopped mid-exam (the demo): no more of its plan
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):  # the others finish what they were doing
                await asyncio.gather(*self.tasks.values(), return_exceptions=True)
                while any(user.sock is not None for user in self.tasks):  # closes under way
                    await asyncio.sleep(0.05)
        for task in self.tasks.values():
            task.cancel()
        if self.shared is not None:
            await self.shared.aclose()
        return {"stopped": len(self.tasks)}

    async def collect(self) -> dict[str, Any]:
        tokens = await self.watch.report()
        r = self.records
        return {
            "joins": r.joins,
            "actions": r.actions,
            "deliveries": r.deliveries,
            "alerts": [(t, data) for t, data in r.alerts.values()],
            "media_failures": r.media_failures,
            "peers": r.peers,
            "injected": r.injected,
            "links": r.links,
            "assigns": r.assigns,
            "leaves": r.leaves,
            "closes": dict(r.closes),
            "errors": dict(r.errors),
            "counts": dict(r.counts),
            "never_assigned": [c.user_id for c in self.candidates if not c.assigned_once],
            "backfill": r.backfill,
            "pages": {c.user_id: c.page_summary() for c in self.candidates},
            "tokens": {k: v for k, v in tokens.items() if k not in ("rooms", "refresh_stamps")},
        }


async def _serve(pipe: Connection) -> None:
    swarm = Swarm()
    loop = asyncio.get_running_loop()
    handlers = {
        "start": swarm.start,
        "add": swarm.add,
        "snapshot": swarm.snapshot,
        "stop": swarm.stop,
        "collect": swarm.collect,
    }
    while True:
        command, args = await loop.run_in_executor(None, pipe.recv)
        if command == "exit":
            break
        try:
            reply: Any = ("ok", await handlers[command](**args))
        except Exception as exc:
            reply = ("error", f"{type(exc).__name__}: {exc}")
        pipe.send(reply)
    for user in [*swarm.candidates, *swarm.proctors]:
        if user.sock is not None:
            user.sock.abort()


def swarm_main(pipe: Connection, index: int) -> None:
    """Entry point of a worker process (multiprocessing, spawn)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    worker_setup()
    asyncio.run(_serve(pipe))
