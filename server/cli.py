"""`proctorhub run | ...`: the command line."""

from __future__ import annotations

import argparse
import sys
import time

import uvicorn

from server.auth import mint_session
from server.config import ConfigError, Settings, configure_logging, load_settings


def _print_embedded_banner(settings: Settings, host: str, port: int) -> None:
    now = time.time()
    base = f"http://{host}:{port}"

    def token(user: str, role: str) -> str:
        return mint_session(
            settings.hub_secret,
            user_id=user,
            event_id="demo",
            role=role,  # type: ignore[arg-type]
            now=now,
            ttl_s=12 * 3600,
            name=user.replace("-", " ").title(),
        )

    print(
        "\nproctorhub is running on its embedded defaults (memory store, no REDIS_URL).\n"
        f"  browser:   {base}/             status: {base}/healthz   metrics: {base}/metrics\n"
        f'  websocket: ws://{host}:{port}/ws  (first message: {{"type": "auth", "data": {{"token": ...}}}})\n'
        "  HUB_SECRET was not set, so a random one was made for this run. Tokens for event 'demo' (12 h):\n"
        f"  candidate: {token('candidate-1', 'candidate')}\n"
        f"  proctor:   {token('proctor-1', 'proctor')}\n"
        f"  admin:     {token('admin-1', 'admin')}\n"
        f"  HTTP API:  curl -H 'Authorization: Bearer <admin token>' {base}/api/v1/events\n",
        flush=True,
    )


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"proctorhub: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    from server.app import create_app

    if settings.embedded_secret:
        _print_embedded_banner(settings, args.host, args.port)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        ws="websockets-sansio",
        ws_max_size=settings.max_message_bytes,
        ws_ping_interval=settings.heartbeat_s,
        ws_ping_timeout=settings.pong_timeout_s,
        ws_per_message_deflate=False,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="proctorhub", description="Real-time coordination hub for proctoring."
    )
    commands = root.add_subparsers(dest="command", required=True)
    run_cmd = commands.add_parser("run", help="run the hub (settings from the environment)")
    run_cmd.add_argument("--host", default="127.0.0.1")
    run_cmd.add_argument("--port", type=int, default=8000)
    run_cmd.set_defaults(handler=run)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.handler(args))
