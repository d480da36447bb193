"""`proctorhub loadtest`: rehearse an exam against a hub and get a verdict (exit 0 pass, 1 goal missed).

    proctorhub loadtest [run] SCENARIO [--candidates N ...] [--set section.key=value ...]
                        [--hub URL --simulator URL (--api-key KEY | --secret SECRET)]
    proctorhub loadtest check FILE...          check scenario files, print them resolved
    proctorhub loadtest BENCH ...              a bench: hub, storm, planner, webhook, alert-latency,
                                               page, client (each with its own --help)

SCENARIO is a name from load_tests/scenario/ (smoke, exam-600, exam-5000, soak-10k) or a path.
Without --hub the tester starts the hub (and simulator) on 127.0.0.1 itself and stops them after.
Credentials may also come from PROCTORHUB_LOADTEST_API_KEY / PROCTORHUB_LOADTEST_SECRET, so they do
not show in the process list. Exit codes: 0 every goal met, 1 a goal missed, 2 bad scenario or
unreachable target, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from load_tests.benches import ALIASES, BENCHES
from load_tests.run import procs
from load_tests.scenario.loading import ScenarioError, load, override
from load_tests.scenario.model import Scenario

COMMANDS = ("run", "check")
# flag -> scenario key (as --set would take it)
FLAGS = {
    "candidates": ("candidates", int),
    "proctors": ("proctors", int),
    "exam_s": ("exam_s", float),
    "drain_s": ("drain_s", float),
    "ramp_s": ("arrival.ramp_s", float),
    "token_ttl_s": ("token_ttl_s", int),
    "room_size": ("room_size", int),
    "churn": ("churn.share", float),
    "camera_loss": ("faults.camera_loss", int),
    "recording_drop": ("faults.recording_drop", int),
    "recording_fail": ("faults.recording_fail", int),
    "workers": ("workers", int),
    "protocol": ("protocol", str),
    "seed": ("seed", int),
}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="proctorhub loadtest", description=__doc__.split("\n\n")[0])
    sub = root.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scenario and judge it")
    run.add_argument(
        "scenario", nargs="?", default="smoke", help="name in load_tests/scenario/ or a .toml path"
    )
    for flag, (key, kind) in FLAGS.items():
        run.add_argument(f"--{flag.replace('_', '-')}", type=kind, dest=flag, help=f"sets {key}")
    run.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="any scenario key, TOML value"
    )
    run.add_argument("--hub", help="hub base URL (http(s)://host:port); default: start one on 127.0.0.1")
    run.add_argument("--simulator", help="the 100ms simulator's base URL (with --hub)")
    run.add_argument("--api-key", default=os.environ.get("PROCTORHUB_LOADTEST_API_KEY"))
    run.add_argument(
        "--secret", default=os.environ.get("PROCTORHUB_LOADTEST_SECRET"), help="the hub's HUB_SECRET"
    )
    run.add_argument("--out", type=Path, default=procs.RESULTS, help="where the run's folder goes")
    run.add_argument(
        "--profile-hub",
        nargs="?",
        const="sample",
        choices=("sample", "cprofile"),
        help="profile the started hub: sampled stacks (default, a few percent) or cProfile (2-3x slower)",
    )
    run.add_argument("--progress", choices=("auto", "rich", "plain", "off"), default="auto")
    check = sub.add_parser("check", help="check scenario files")
    check.add_argument("scenarios", nargs="+")
    for name, (module, what) in BENCHES.items():
        sub.add_parser(name, help=f"{what} (load_tests.benches.{module}, its own --help)", add_help=False)
    return root


def resolve(args: argparse.Namespace) -> Scenario:
    scenario = load(args.scenario)
    sets = [
        f"{FLAGS[flag][0]}={value!r}" if isinstance(value, str) else f"{FLAGS[flag][0]}={value}"
        for flag in FLAGS
        if (value := getattr(args, flag)) is not None
    ]
    sets = [item.replace("'", '"') for item in sets] + list(args.set)
    return override(scenario, sets) if sets else scenario


def bench(name: str, argv: list[str]) -> int:
    """Run a bench with its own arguments (imported only when asked for: some need extras)."""
    module = importlib.import_module(f"load_tests.benches.{BENCHES[ALIASES.get(name, name)][0]}")
    return int(module.main(argv) or 0)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and (argv[0] in BENCHES or argv[0] in ALIASES):
        return bench(argv[0], argv[1:])
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["run", *argv]
    args = parser().parse_args(argv)
    try:
        if args.command == "check":
            for name in args.scenarios:
                print(json.dumps({"source": name, **asdict(load(name))}, indent=1, default=str))
            return 0
        scenario = resolve(args)
    except ScenarioError as exc:
        print(f"proctorhub loadtest: {exc}", file=sys.stderr)
        return 2
    from load_tests.run.runner import RunOptions, run

    return run(
        RunOptions(
            scenario=scenario,
            hub_url=args.hub,
            sim_url=args.simulator,
            api_key=args.api_key,
            secret=args.secret,
            out_dir=args.out,
            profile_hub=args.profile_hub,
            progress=args.progress,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
