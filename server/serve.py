"""The hub under uvicorn, tuned as the load tests measured it: one place for `proctorhub run` and the
load tester's profiler, so a profiled hub runs exactly like the real one."""

from __future__ import annotations

import gc

import uvicorn

from server.config import Settings

GC_THRESHOLDS = (50_000, 20, 20)
"""Python's defaults (700, 10, 10) made the hub run a full collection every 2 s while broadcasting to
5,000 sockets, each a 350 ms pause that freed nothing (load_tests, broadcast scenario). Young garbage is
still collected often; the long-lived heap of sockets is scanned far less."""


def tune_gc() -> None:
    gc.collect()
    gc.freeze()  # what start-up made lives as long as the process: keep it out of every scan
    gc.set_threshold(*GC_THRESHOLDS)


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the hub until SIGINT/SIGTERM: the sans-I/O websockets protocol (the hub's hot path), no
    per-message deflate (CPU per frame for little gain on small JSON), pings per the settings."""
    from server.app import create_app

    tune_gc()
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        ws="websockets-sansio",
        ws_max_size=settings.max_message_bytes,
        ws_ping_interval=settings.heartbeat_s,
        ws_ping_timeout=settings.pong_timeout_s,
        ws_per_message_deflate=False,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=10,
    )
