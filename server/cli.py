"""`proctorhub run | ...`: the command line."""

from __future__ import annotations

import argparse
import os
import sys
import time

import uvicorn

from server.auth import mint_session
from server.config import (
    ConfigError,
    Settings,
    check_bind,
    configure_logging,
    is_loopback,
    load_settings,
)
from server.serve import serve


def _print_embedded_banner(settings: Settings, host: str, port: int) -> None:
    now = time.time()
    base = f"http://{host}:{port}"
    ttl_s = min(12 * 3600, settings.jwt_max_ttl_s)

    def token(user: str, role: str) -> str:
        return mint_session(
            settings.hub_secret,
            user_id=user,
            event_id="demo",
            role=role,  # type: ignore[arg-type]
            now=now,
            ttl_s=ttl_s,
            name=user.replace("-", " ").title(),
            rules=settings.token_rules,
        )

    admin = token("admin-1", "admin")
    print(
        "\nproctorhub is running on its embedded defaults (memory store, no REDIS_URL).\n"
        f"  status: {base}/healthz   metrics: {base}/metrics   websocket: ws://{host}:{port}/ws\n"
        "  HUB_SECRET was not set, so a random one was made for this run. "
        f"Pages of event 'demo' ({ttl_s / 3600:g} h):\n"
        f"  candidate: {base}/candidate#token={token('candidate-1', 'candidate')}\n"
        f"  proctor:   {base}/proctor#token={token('proctor-1', 'proctor')}\n"
        f"  admin:     {base}/admin#token={admin}\n"
        f"  review:    {base}/review#token={admin}\n"
        "  HTTP API:  curl -H 'Authorization: Bearer <the admin link's token>' "
        f"{base}/api/v1/events\n",
        flush=True,
    )


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
        check_bind(settings, args.host)
    except ConfigError as exc:
        print(f"proctorhub: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if settings.embedded_secret:
        _print_embedded_banner(settings, args.host, args.port)
    serve(settings, args.host, args.port)
    return 0


def simulate_100ms(args: argparse.Namespace) -> int:
    """`proctorhub simulate-100ms`: the 100ms simulator as its own process (for load tests)."""
    from server.hms.simulator import LocalTarget, Simulator, config_from_env

    try:
        settings = load_settings()
        config = config_from_env(settings, os.environ)
        if config.control_key is None and not is_loopback(args.host):
            raise ConfigError(
                f"Config 'HMS_SIM_CONTROL_KEY' is required on --host {args.host}: /_sim injects faults "
                "and lists every recording link, so off loopback it wants a Bearer key."
            )
    except ValueError as exc:  # ConfigError, or SimulatorConfig refusing a value
        print(f"proctorhub: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    storage = config.storage
    if isinstance(storage, LocalTarget):
        where = f"folder {storage.root}/{storage.prefix}"
    else:
        where = f"s3://{storage.bucket}/{storage.prefix}" if storage is not None else "memory"
    generated = (
        "" if os.environ.get("HMS_SECRET") else "   (generated for this run; set HMS_SECRET to keep it)"
    )
    hook = config.webhook_url or "none (set HMS_SIM_WEBHOOK_URL)"
    control = "Bearer HMS_SIM_CONTROL_KEY" if config.control_key else "none (loopback only)"
    print(
        f"\n100ms simulator on http://{args.host}:{args.port}  (REST /v2, media /media, control /_sim)\n"
        f"  HMS_ACCESS_KEY={config.access_key}\n"
        f"  HMS_SECRET={config.secret}{generated}\n"
        f"  template {config.template_id}, roles {', '.join(sorted(config.roles))}\n"
        f"  webhooks   -> {hook}  headers: {', '.join(config.webhook_headers) or 'none'}\n"
        f"  recordings -> {where}\n"
        f"  /_sim auth -> {control}\n",
        flush=True,
    )
    uvicorn.run(
        Simulator(config).asgi_app,
        host=args.host,
        port=args.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=5,
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
    sim_cmd = commands.add_parser(
        "simulate-100ms", help="run the 100ms simulator on its own (settings from the environment)"
    )
    sim_cmd.add_argument("--host", default="127.0.0.1")
    sim_cmd.add_argument("--port", type=int, default=8100)
    sim_cmd.set_defaults(handler=simulate_100ms)
    commands.add_parser(
        "loadtest",
        help="rehearse an exam against a hub and get a verdict (proctorhub loadtest --help)",
        add_help=False,
    )
    commands.add_parser(
        "demo",
        help="the hub with a small live exam of simulated users, and links to watch it (--help)",
        add_help=False,
    )
    return root


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["loadtest"]:  # its own parser (load_tests/loadtest.py) takes every argument after it
        from load_tests.loadtest import main as loadtest

        return loadtest(argv[1:])
    if argv[:1] == ["demo"]:  # its body is in load_tests, with the simulated users it drives
        from load_tests.run.demo import main as demo

        return demo(argv[1:])
    args = parser().parse_args(argv)
    return int(args.handler(args))
