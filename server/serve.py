"""The hub under uvicorn, tuned as the load tests measured it: one place for `proctorhub run` and the
load tester's profiler, so a profiled hub runs exactly like the real one."""

from __future__ import annotations

import gc
import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Callable
from types import FrameType

import uvicorn

from server.config import Settings

log = logging.getLogger("proctorhub.serve")

GC_THRESHOLDS = (50_000, 20, 20)
"""Python's defaults (700, 10, 10) made the hub run a full collection every 2 s while broadcasting to
5,000 sockets, each a 350 ms pause that freed nothing (load_tests, broadcast scenario). Young garbage is
still collected often; the long-lived heap of sockets is scanned far less."""


READ_LIMIT_FACTOR = 4
"""uvicorn reads frames up to this many times `HUB_MAX_MESSAGE_BYTES`; the hub closes a frame over the
limit itself (1009) with a closing handshake. Had uvicorn refused it (ws_max_size = the limit), it would
close the TCP connection at once with the rest of the frame unread: the kernel then resets the
connection and a client could lose the close frame and see 1006 (about 1 time in 50, web/tests'
1009 test). Frames over this bound are still dropped that way, unread."""


HTTP_KEEP_ALIVE_S = 75
"""An idle HTTP/1.1 connection is kept this long (uvicorn's default is 5 s). Longer than the idle timeout
of the usual load balancers (60 s) and than clients' own pools (httpx 5 s), so the client side always
closes first: a server closing a connection as the other side reuses it makes a 502 at a balancer, or a
read error at a client."""


def fast_parts() -> tuple[str, str]:
    """uvicorn's event loop and HTTP parser: uvloop and httptools where installed (pyproject), else
    asyncio and h11. Chosen here rather than by uvicorn's "auto", so the log says which run."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return loop, http


def tune_gc() -> None:
    gc.collect()
    gc.freeze()  # what start-up made lives as long as the process: keep it out of every scan
    gc.set_threshold(*GC_THRESHOLDS)


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the hub until SIGINT/SIGTERM: the sans-I/O websockets protocol (the hub's hot path), no
    per-message deflate (CPU per frame for little gain on small JSON), pings per the settings."""
    from server.api.client_address import networks
    from server.api.socket_path import SocketPath
    from server.app import SHUTDOWN_SHARE, create_app
    from server.hubs.endpoint import HubEndpoint
    from server.ws_protocol import FastSendProtocol

    tune_gc()
    app = create_app(settings)
    hub = app.state.hub
    loop, http = fast_parts()
    log.info("event loop: %s; HTTP parser: %s", loop, http)
    config = uvicorn.Config(
        SocketPath(app, HubEndpoint(hub), networks(settings.trusted_proxies)),
        interface="asgi3",
        loop=loop,
        http=http,
        host=host,
        port=port,
        ws=FastSendProtocol,
        ws_max_size=settings.max_message_bytes * READ_LIMIT_FACTOR,
        ws_ping_interval=settings.heartbeat_s,
        ws_ping_timeout=settings.pong_timeout_s,
        ws_per_message_deflate=False,
        # X-Forwarded-* are read by the app, from HUB_TRUSTED_PROXIES only (server/api/client_address.py):
        # uvicorn's own reading would believe anyone's under FORWARDED_ALLOW_IPS=*.
        proxy_headers=False,
        forwarded_allow_ips="",
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_s * SHUTDOWN_SHARE,
        timeout_keep_alive=HTTP_KEEP_ALIVE_S,
    )
    DrainingServer(config, hub.begin_drain, ExitDeadline(settings.shutdown_s)).run()


OVERRAN_EXIT_CODE = 70
"""The exit status of a node that the deadline ended (EX_SOFTWARE): an orchestrator sees it failed."""


class ExitDeadline:
    """The last word on HUB_SHUTDOWN_S: a thread, not a task, so a stuck event loop cannot hold it. The
    steps of the shutdown are each bounded, but what runs after them is not: asyncio.run cancels every
    task left and waits for each (a task that swallows its cancellation waits forever), then joins the
    default executor's threads after running every write still queued there. If the process is still
    here `budget_s` after the signal, it says so and exits at once."""

    def __init__(self, budget_s: float, exit: Callable[[int], object] = os._exit) -> None:
        self.budget_s = budget_s
        self._exit = exit
        self._timer: threading.Timer | None = None

    def arm(self) -> None:
        if self._timer is None:
            self._timer = threading.Timer(self.budget_s, self._overran)
            self._timer.daemon = True  # never keeps a process that finished in time
            self._timer.start()

    def _overran(self) -> None:
        log.error("shutdown overran HUB_SHUTDOWN_S (%gs): exiting now", self.budget_s)
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stderr.flush()
        self._exit(OVERRAN_EXIT_CODE)


class DrainingServer(uvicorn.Server):
    """uvicorn, telling the hub the moment SIGTERM/SIGINT arrives: it refuses new sockets and lets the
    closing ones go without a store write each (its stop hands them back at once). Then uvicorn closes
    the sockets (1012) within SHUTDOWN_SHARE of HUB_SHUTDOWN_S, and the app's shutdown has as long; the
    `deadline` ends the process if all that overruns."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None], deadline: ExitDeadline) -> None:
        super().__init__(config)
        self._on_exit = on_exit
        self._deadline = deadline

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._deadline.arm()
        self._on_exit()
        super().handle_exit(sig, frame)
