"""A load-test scenario: what exam to rehearse, from a small TOML file and/or flags, checked strictly.

Pure: text in, a frozen `Scenario` out, or `ScenarioError` naming where and why. tomllib's own
errors carry the position; for a value that parses but makes no sense (unknown key, negative count,
a ramp longer than the exam) the line is found by looking for the key in the text (`locate`).

    name = "exam-600"            # top level: the exam
    candidates = 600
    [arrival]  curve = "ramp", ramp_s = 60          (all | ramp | waves)
    [churn]    share = 0.1, away_s = [5, 40]
    [faults]   recording_drop = 14, camera_loss = 20, webhook_duplicate = 0.05, ...
    [goals]    join_p99_ms = 3000, false_alerts = 0, ...
    [hub]      simulator = "embedded", grace_s = 20, env = {...}   (only when the tester starts the hub)
               store = "redis", nodes = 2   (a cluster: N nodes on one redis-server and one simulator)
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from load_tests.scenario.model import (
    Arrival,
    Churn,
    Faults,
    Finish,
    Goals,
    HubSetup,
    ProctorLoss,
    Scenario,
)

SCENARIO_DIR = Path(__file__).resolve().parent  # NAME.toml beside this module


class ScenarioError(ValueError):
    """A scenario that cannot run; the message says where (file:line) and why."""


SECTIONS: dict[str, type] = {
    "arrival": Arrival,
    "churn": Churn,
    "proctor_loss": ProctorLoss,
    "finish": Finish,
    "faults": Faults,
    "goals": Goals,
    "hub": HubSetup,
}
CHOICES = {
    ("", "protocol"): ("json", "msgpack", "mixed"),
    ("arrival", "curve"): ("all", "ramp", "waves"),
    ("hub", "simulator"): ("embedded", "standalone"),
    ("hub", "store"): ("memory", "redis"),
}
LIMITS: dict[tuple[str, str], tuple[float, float]] = {
    ("", "candidates"): (1, 100_000),
    ("", "proctors"): (0, 20_000),
    ("", "exam_s"): (1, 86_400),
    ("", "drain_s"): (0, 3_600),
    ("", "token_ttl_s"): (10, 86_400),
    ("", "room_size"): (1, 100),
    ("", "proctors_per_room"): (1, 10),
    ("", "proctor_load"): (1, 1000),
    ("", "workers"): (0, 64),
    ("arrival", "waves"): (1, 1000),
    ("churn", "share"): (0, 1),
    ("faults", "webhook_lose"): (0, 1),
    ("faults", "webhook_duplicate"): (0, 1),
    ("faults", "webhook_delay"): (0, 1),
    ("goals", "recall"): (0, 1),
    ("goals", "backfill_coverage"): (0, 1),
    ("hub", "nodes"): (1, 16),
}


def locate(text: str, section: str, key: str) -> int | None:
    """The line (1-based) where `key` is set in `[section]` ("" = top level) of a TOML text."""
    current = ""
    pattern = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=")
    for number, line in enumerate(text.splitlines(), start=1):
        header = re.match(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]", line)
        if header:
            current = header.group(1)
            if current == section and not key:
                return number
            continue
        if current == section and pattern.match(line):
            return number
    return None


class _Checker:
    """Turns one parsed TOML document into constructor arguments, raising ScenarioError with a line."""

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source

    def fail(self, section: str, key: str, reason: str) -> ScenarioError:
        line = locate(self.text, section, key)
        where = f"{self.source}:{line}" if line and not self.source.startswith("--") else self.source
        name = f"{section}.{key}" if section else key
        return ScenarioError(f"{where}: {name}: {reason}")

    def value(self, section: str, key: str, raw: object, default: object) -> object:
        if isinstance(default, bool) or isinstance(raw, bool):
            if type(raw) is not type(default):
                raise self.fail(section, key, f"must be {type(default).__name__}, got {raw!r}")
            return raw
        if isinstance(default, tuple) and key == "env":
            if not isinstance(raw, dict) or not all(isinstance(v, str | int | float) for v in raw.values()):
                raise self.fail(section, key, "must be a table of NAME = value")
            return tuple((str(k), str(v)) for k, v in sorted(raw.items()))
        if isinstance(default, tuple):
            if not isinstance(raw, list) or len(raw) != 2 or not all(_number(x) for x in raw):
                raise self.fail(section, key, f"must be [min, max] in seconds, got {raw!r}")
            low, high = float(raw[0]), float(raw[1])
            if low < 0 or high < low:
                raise self.fail(section, key, f"must be 0 <= min <= max, got {raw!r}")
            return (low, high)
        if isinstance(default, int) and not isinstance(default, bool):
            if not isinstance(raw, int):
                raise self.fail(section, key, f"must be an integer, got {raw!r}")
        elif isinstance(default, float):
            if not _number(raw):
                raise self.fail(section, key, f"must be a number, got {raw!r}")
            raw = float(raw)  # type: ignore[arg-type]
            if not math.isfinite(raw):
                raise self.fail(section, key, "must be finite")
        elif isinstance(default, str) and not isinstance(raw, str):
            raise self.fail(section, key, f"must be a string, got {raw!r}")
        if isinstance(raw, int | float) and raw < 0:
            raise self.fail(section, key, f"must not be negative, got {raw!r}")
        choices = CHOICES.get((section, key))
        if choices and raw not in choices:
            raise self.fail(section, key, f"must be one of {', '.join(choices)}, got {raw!r}")
        low, high = LIMITS.get((section, key), (-math.inf, math.inf))
        if isinstance(raw, int | float) and not low <= raw <= high:
            raise self.fail(section, key, f"must be between {low:g} and {high:g}, got {raw!r}")
        return raw

    def table(self, section: str, cls: type, raw: object, base: Any) -> Any:
        if not isinstance(raw, dict):
            raise self.fail("", section, "must be a table")
        known = {f.name: f for f in fields(cls) if f.name != "source"}
        values: dict[str, Any] = {}
        for key, item in raw.items():
            if key not in known:
                raise self.fail(section, key, f"unknown key (known: {', '.join(sorted(known))})")
            if section == "" and key in SECTIONS:
                values[key] = self.table(key, SECTIONS[key], item, getattr(base, key))
            else:
                values[key] = self.value(section, key, item, getattr(base, key))
        return replace(base, **values)


def _number(raw: object) -> bool:
    return isinstance(raw, int | float) and not isinstance(raw, bool)


def parse(text: str, source: str = "<scenario>", base: Scenario | None = None) -> Scenario:
    """A scenario from TOML text (on top of `base`), checked; ScenarioError says file:line and why."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not valid TOML: {exc}") from None
    checker = _Checker(text, source)
    scenario: Scenario = checker.table("", Scenario, document, base or Scenario())
    check_sense(scenario, checker)
    return replace(scenario, source=source)


def check_sense(s: Scenario, checker: _Checker | None = None) -> None:
    """Rules between fields: a ramp longer than the exam, more faults than candidates, ..."""
    fail = (checker or _Checker("", "<flags>")).fail
    if s.arrival.curve == "ramp" and s.arrival.ramp_s > s.exam_s:
        raise fail(
            "arrival", "ramp_s", f"the ramp ({s.arrival.ramp_s:g} s) is longer than the exam ({s.exam_s:g} s)"
        )
    if s.arrival.curve == "waves" and s.arrival_span_s > s.exam_s:
        raise fail(
            "arrival",
            "wave_gap_s",
            f"the last wave ({s.arrival_span_s:g} s) comes after the exam ends ({s.exam_s:g} s)",
        )
    if s.finish.spread_s > s.exam_s:
        raise fail("finish", "spread_s", f"longer than the exam ({s.exam_s:g} s)")
    if s.proctor_loss.count > s.proctors:
        raise fail("proctor_loss", "count", f"more than the {s.proctors} proctors")
    if s.proctor_loss.count and s.proctor_loss.at_s >= s.exam_s:
        raise fail("proctor_loss", "at_s", f"after the exam ends ({s.exam_s:g} s)")
    recording = s.faults.recording_drop + s.faults.recording_fail
    if recording > s.candidates:
        raise fail("faults", "recording_drop", f"{recording} recording faults for {s.candidates} candidates")
    if s.faults.camera_loss > s.candidates:
        raise fail("faults", "camera_loss", f"more than the {s.candidates} candidates")
    if s.faults.camera_loss and s.faults.camera_loss_s[1] >= s.exam_s:
        raise fail("faults", "camera_loss_s", f"a camera loss as long as the exam ({s.exam_s:g} s)")
    if s.churn.share and s.churn.away_s[1] >= s.exam_s:
        raise fail("churn", "away_s", f"away as long as the exam ({s.exam_s:g} s)")
    if s.hub.nodes > 1 and s.hub.store != "redis":
        raise fail("hub", "nodes", f'{s.hub.nodes} nodes share their state in Redis: set store = "redis"')
    if s.hub.store == "redis" and s.hub.simulator != "standalone":
        raise fail(
            "hub", "simulator", 'nodes on Redis share one 100ms simulator: set simulator = "standalone"'
        )
    if s.faults.node_kill_at_s:
        if s.hub.nodes < 2:
            raise fail("faults", "node_kill_at_s", f"a node kill needs hub.nodes >= 2 (got {s.hub.nodes})")
        if s.faults.node_kill_at_s >= s.exam_s:
            raise fail("faults", "node_kill_at_s", f"after the exam ends ({s.exam_s:g} s)")


def load(name_or_path: str) -> Scenario:
    """A scenario by name (load_tests/scenario/NAME.toml) or by path."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = SCENARIO_DIR / f"{name_or_path}.toml"
    try:
        text = path.read_text()
    except OSError as exc:
        known = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.toml")))
        raise ScenarioError(f"{name_or_path}: cannot read ({exc.strerror}); scenarios: {known}") from None
    return parse(text, str(path))


def override(scenario: Scenario, assignments: list[str]) -> Scenario:
    """Apply `section.key=value` (TOML values) from the command line, checked like the file."""
    lines: dict[str, list[str]] = {"": []}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ScenarioError(f"--set {item!r}: expected KEY=VALUE (e.g. faults.camera_loss=5)")
        section, _, name = key.strip().rpartition(".")
        value = value.strip()
        try:
            tomllib.loads(f"v = {value}")
        except tomllib.TOMLDecodeError:  # a bare word: take it as a string
            value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        lines.setdefault(section, []).append(f"{name} = {value}")
    text = "\n".join(lines.pop(""))
    for section, body in lines.items():
        text += f"\n[{section}]\n" + "\n".join(body)
    merged = parse(text, "--set", base=scenario)
    return replace(merged, source=scenario.source)
