"""What the load test runs against: a hub and a 100ms simulator, started here or given as URLs.

Started here (the default): `proctorhub run` on a free loopback port with the simulator embedded
(mounted at /hms-sim) or, for big runs, `proctorhub simulate-100ms` as its own process; or a cluster
(`[hub] store = "redis"`, `nodes = N`): a redis-server, one standalone simulator and N nodes on them
(the simulator's webhooks go to the first node, so a node kill takes the last). Each in its own
process group, stopped by `Target.stop` (also on Ctrl-C and at exit: procs.kill_all).
Given: `--hub URL --simulator URL` and an API key or the host secret. Either way `check` proves
both are what they claim before anything else is sent (fail fast, with the reason), and every
request goes to those two bases only: no redirects followed, no proxies from the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import connect

from load_tests.run import procs
from load_tests.scenario.model import Scenario
from server.auth import mint_session

HELLO_FIELDS = frozenset({"session_id", "user_id", "event_id", "role", "node", "heartbeat_s", "server_time"})
READY_TIMEOUT_S = 30.0


class TargetError(RuntimeError):
    """The target is not a reachable proctorhub (or simulator); the message says which and why."""


@dataclass
class Target:
    hub_url: str  # http(s)://host:port (the first node of a cluster)
    sim_url: str  # base of /media and /_sim
    secret: str | None = None
    api_key: str | None = None
    hub_procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    sim_proc: subprocess.Popen[bytes] | None = None
    redis: procs.Redis | None = None
    node_urls: list[str] = field(default_factory=list)  # every node's base URL ([hub_url] if one)
    killed: dict[int, float] = field(default_factory=dict)  # node index -> when it was SIGKILLed
    logs: list[Path] = field(default_factory=list)
    workdir: Path | None = None
    profile: Path | None = None

    @property
    def hub_proc(self) -> subprocess.Popen[bytes] | None:
        return self.hub_procs[0] if self.hub_procs else None

    @property
    def urls(self) -> list[str]:
        """Every node's base URL: the load balancer's pool."""
        return self.node_urls or [self.hub_url]

    @property
    def ws_urls(self) -> list[str]:
        return [_ws(url) for url in self.urls]

    def kill_node(self, index: int) -> float:
        """SIGKILL node `index` (its whole process group) without a word; when it was killed."""
        proc = self.hub_procs[index]
        at = self.killed[index] = time.time()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return at

    @property
    def ws_url(self) -> str:
        return _ws(self.hub_url)

    @property
    def local(self) -> bool:
        return bool(self.hub_procs)

    def pids(self) -> dict[str, int]:
        """The processes started here: `hub` (and `hub2`, ... for more nodes), `simulator`, `redis`."""
        out = {("hub" if i == 0 else f"hub{i + 1}"): p.pid for i, p in enumerate(self.hub_procs)}
        if self.sim_proc:
            out["simulator"] = self.sim_proc.pid
        if self.redis is not None:
            out["redis"] = self.redis.proc.pid
        return out

    def admin_headers(self) -> dict[str, str]:
        if self.api_key:
            return {"Authorization": f"Bearer {self.api_key}"}
        if not self.secret:
            raise TargetError("neither an API key nor the host secret was given")
        token = mint_session(
            self.secret, user_id="loadtest", event_id="*", role="admin", now=time.time(), ttl_s=3600
        )
        return {"Authorization": f"Bearer {token}"}

    def stop(self) -> dict[str, int]:
        """Stop what was started here (hub first, so it is not left calling a dead simulator)."""
        codes = {}
        hubs = [(("hub" if i == 0 else f"hub{i + 1}"), p) for i, p in enumerate(self.hub_procs)]
        for name, proc in [*hubs, ("simulator", self.sim_proc)]:
            if proc is not None:  # a profiled hub needs its graceful exit to write the profile
                codes[name] = procs.stop_group(proc, grace_s=60.0 if self.profile else 15.0)
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir / "archive", ignore_errors=True)
        return codes


def _ws(url: str) -> str:
    return ("wss" + url[5:] if url.startswith("https") else "ws" + url[4:]) + "/ws"


def http_client(timeout: float = 10.0) -> httpx.Client:
    return httpx.Client(timeout=timeout, trust_env=False, follow_redirects=False)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    try:
        procs.wait_ready(url, proc, log, what, READY_TIMEOUT_S)
    except procs.NotReady as exc:
        raise TargetError(str(exc)) from None


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "REDIS_", "HMS_", "S3_"))}


def start_local(scenario: Scenario, run_dir: Path, profile: Path | None = None) -> Target:
    """Hub node(s) (and, if the scenario says so, a standalone simulator; for Redis a redis-server) on
    free loopback ports, every node with the same host secret and API key."""
    run_dir.mkdir(parents=True, exist_ok=True)
    setup = scenario.hub
    ports = [procs.free_port() for _ in range(setup.nodes)]
    secret, api_key = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    hms = {
        "HMS_ACCESS_KEY": secrets.token_hex(12),
        "HMS_SECRET": secrets.token_urlsafe(32),
        "HMS_WEBHOOK_SECRET": secrets.token_urlsafe(24),
        "HMS_SIM_WEBHOOK_URL": f"http://127.0.0.1:{ports[0]}/webhooks/100ms",
        "HMS_SIM_SEED": str(scenario.seed),
        "ARCHIVE_DIR": str(run_dir / "archive"),
        "LOG_LEVEL": "WARNING",
    }
    target = Target(
        hub_url=f"http://127.0.0.1:{ports[0]}",
        sim_url="",
        secret=secret,
        api_key=api_key,
        node_urls=[f"http://127.0.0.1:{port}" for port in ports],
        workdir=run_dir,
        profile=profile,
    )
    hub_env = {
        **_base_env(),
        **hms,
        "HUB_SECRET": secret,
        "HUB_API_KEY": api_key,
        "HUB_PRESENCE_GRACE_S": f"{setup.grace_s:g}",
    }
    try:
        if setup.store == "redis":
            target.redis = procs.start_redis()
            hub_env["REDIS_URL"] = target.redis.url
        if setup.simulator == "standalone":
            sim_port = procs.free_port()
            log = run_dir / "simulator.log"
            argv = procs.server_argv(sim_port, "simulate-100ms")
            target.sim_proc = procs.spawn_group(argv, {**_base_env(), **hms}, log)
            target.logs.append(log)
            target.sim_url = f"http://127.0.0.1:{sim_port}"
            _wait_ready(f"{target.sim_url}/_sim/health", target.sim_proc, log, "simulator")
            hub_env["HMS_API_BASE"] = f"{target.sim_url}/v2"
            hub_env["HMS_RECORDING_PREFIX"] = "100ms"  # where the simulator writes (HMS_SIM_PREFIX)
        else:
            target.sim_url = f"{target.hub_url}/hms-sim"
        hub_env.update(dict(setup.env))
        for index, port in enumerate(ports):
            name = "hub" if setup.nodes == 1 else f"hub-{index + 1}"
            log = run_dir / f"{name}.log"
            command = procs.server_argv(port)[1:]
            if index == 0 and profile is not None and profile.suffix == ".prof":  # slows it 2-3x
                command = ["-m", "cProfile", "-o", str(profile), *command]
            elif index == 0 and profile is not None:  # sampled stacks (hub_profiler.py): a few percent
                command = ["-m", "load_tests.run.hub_profiler", str(profile), *command[3:]]
            env = {**hub_env, "HUB_NODE_ID": name} if setup.nodes > 1 else hub_env
            target.hub_procs.append(procs.spawn_group([sys.executable, *command], env, log))
            target.logs.append(log)
        for url, proc, log in zip(target.urls, target.hub_procs, target.logs[-setup.nodes :], strict=True):
            _wait_ready(f"{url}/readyz", proc, log, "hub")
    except BaseException:
        target.stop()
        raise
    return target


def start_embedded(port: int, secret: str, workdir: Path, env: Mapping[str, str]) -> Target:
    """`proctorhub run` on 127.0.0.1:`port` on its embedded defaults (memory store, the 100ms simulator
    in-process, its webhooks to the hub in-process), whatever this shell's HUB_/REDIS_/HMS_/S3_ say;
    with `secret` (to mint the sessions and links) and `env` on top. For `proctorhub demo`."""
    workdir.mkdir(parents=True, exist_ok=True)
    target = Target(
        hub_url=f"http://127.0.0.1:{port}",
        sim_url=f"http://127.0.0.1:{port}/hms-sim",
        secret=secret,
        workdir=workdir,
    )
    hub_env = {**_base_env(), "HUB_SECRET": secret, "ARCHIVE_DIR": str(workdir / "archive"), **env}
    log = workdir / "hub.log"
    try:
        target.hub_procs.append(procs.spawn_group(procs.server_argv(port), hub_env, log))
        target.logs.append(log)
        _wait_ready(f"{target.hub_url}/readyz", target.hub_proc, log, "hub")
    except BaseException:
        target.stop()
        raise
    return target


def _reason(exc: httpx.HTTPError) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {cause.reason or cause}"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    text = str(exc)
    if "SSL" in text or "TLS" in text or "CERTIFICATE" in text:
        return f"TLS error: {text}"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def check(target: Target, timeout: float = 5.0) -> dict[str, Any]:
    """Is the hub a proctorhub and the simulator a 100ms simulator? TargetError says why not."""
    found: dict[str, Any] = {}
    with http_client(timeout) as http:
        for what, url, looks_right in (
            ("hub", f"{target.hub_url}/healthz", lambda j: j.get("status") == "ok" and "node" in j),
            ("simulator", f"{target.sim_url}/_sim/health", lambda j: j.get("ok") is True),
        ):
            try:
                answer = http.get(url)
            except httpx.HTTPError as exc:
                raise TargetError(f"{what} at {url}: {_reason(exc)}") from None
            try:
                body = answer.json()
            except ValueError:
                body = None
            if answer.status_code != 200 or not isinstance(body, dict) or not looks_right(body):
                raise TargetError(
                    f"{what} at {url} is not a proctorhub {what}: it answered {answer.status_code} "
                    f"{answer.text[:120]!r}"
                )
            found[what] = body
    return found


def session_token(target: Target, event_id: str, user_id: str, role: str, ttl_s: int = 3600) -> str:
    """A host-app session token for the event: minted with the secret, or asked of the hub's API."""
    if target.secret:
        return mint_session(
            target.secret,
            user_id=user_id,
            event_id=event_id,
            role=role,  # type: ignore[arg-type]
            now=time.time(),
            ttl_s=ttl_s,
            name=user_id,
        )
    with http_client() as http:
        answer = http.post(
            f"{target.hub_url}/api/v1/events/{event_id}/sessions",
            headers=target.admin_headers(),
            json={"user_id": user_id, "role": role, "ttl_s": ttl_s},
        )
    if answer.status_code not in (200, 201):
        raise TargetError(
            f"the hub refused a session for {user_id}: {answer.status_code} {answer.text[:200]}"
        )
    return str(answer.json()["token"])


async def check_hello(target: Target, token: str) -> dict[str, Any]:
    """A socket authenticated with `token` must get a `hello` of PROTOCOL.md's shape."""
    ssl_context = ssl.create_default_context() if target.ws_url.startswith("wss") else None
    try:
        async with connect(
            target.ws_url, open_timeout=10, compression=None, ssl=ssl_context, proxy=None
        ) as ws:
            await ws.send(orjson.dumps({"type": "auth", "id": 1, "data": {"token": token}}).decode())
            async with asyncio.timeout(10):
                message = orjson.loads(await ws.recv())
    except (OSError, TimeoutError, ValueError) as exc:
        raise TargetError(f"hub WebSocket at {target.ws_url}: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # websockets' handshake and close errors
        raise TargetError(f"hub WebSocket at {target.ws_url}: {exc}") from None
    data = message.get("data") if isinstance(message, dict) else None
    if message.get("type") != "hello" or not isinstance(data, dict) or not set(data) >= HELLO_FIELDS:
        raise TargetError(
            f"hub WebSocket at {target.ws_url} did not answer a proctorhub hello: {message!r:.200}"
        )
    return data


def create_event(target: Target, scenario: Scenario, event_id: str) -> dict[str, Any]:
    """The rehearsal's event on the hub (`POST /api/v1/events`), shaped like the scenario's exam."""
    body = {
        "event_id": event_id,
        "name": f"loadtest {scenario.name}",
        "room_size": scenario.room_size,
        "proctors_per_room": scenario.proctors_per_room,
        "proctor_load": scenario.proctor_load,
        "expected_candidates": scenario.candidates,
        "token_ttl_s": scenario.token_ttl_s,
        "recording": True,
    }
    with http_client() as http:
        answer = http.post(f"{target.hub_url}/api/v1/events", json=body, headers=target.admin_headers())
    if answer.status_code != 201:
        raise TargetError(f"the hub refused to create the event: {answer.status_code} {answer.text[:300]}")
    created: dict[str, Any] = answer.json()
    return created


def event_report(target: Target, event_id: str) -> dict[str, Any] | None:
    """The hub's own report of the event (`GET /api/v1/events/{e}/report`); None if it has none."""
    try:
        with http_client(30.0) as http:
            answer = http.get(
                f"{target.hub_url}/api/v1/events/{event_id}/report", headers=target.admin_headers()
            )
    except httpx.HTTPError:
        return None
    return answer.json() if answer.status_code == 200 else None


def candidate_timelines(target: Target, event_id: str, candidate_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each candidate's timeline as the hub has it (`GET .../candidates/{c}/timeline`); a candidate the
    hub does not answer for is left out."""
    out: dict[str, dict[str, Any]] = {}
    headers = target.admin_headers()
    try:
        with http_client(30.0) as http:
            for cid in candidate_ids:
                answer = http.get(
                    f"{target.hub_url}/api/v1/events/{event_id}/candidates/{cid}/timeline", headers=headers
                )
                if answer.status_code == 200:
                    out[cid] = answer.json()
    except httpx.HTTPError:
        pass
    return out
