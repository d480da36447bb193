"""Imports go downward only: the layers of docs/architecture.md, checked on every module's source.

Every `import` and `from ... import` is read with `ast` (also those inside functions), so a lazy import
cannot hide an arrow pointing up. The allowed arrows are this one table. (The load tester's own rules:
tests/unit/test_loadtest_layout.py.)
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

LAYERS: dict[str, tuple[str, ...]] = {
    # layer: module prefixes (the longest matching prefix decides)
    "core": (
        "server",
        "server.config",
        "server.auth",
        "server.protocol",
        "server.errors",
        "server.topics",
        "server.background",
        "server.metrics",
    ),
    "store": ("server.store",),
    "hms": ("server.hms",),
    "allocation": ("server.allocation",),
    "recording": ("server.recording",),
    "hubs": ("server.hubs",),
    "hostevents": ("server.hostevents",),
    "api": ("server.api",),
    "lti": ("server.lti",),
    "entry": ("server.app", "server.cli", "server.serve", "server.__main__"),
    "load_tests": ("load_tests",),
}

ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "store": {"core", "store"},
    "hms": {"core", "hms"},
    "allocation": {"core", "store", "allocation"},
    "recording": {"core", "store", "hms", "recording"},
    "hubs": {"core", "store", "hms", "allocation", "hubs"},
    # events to the host app: fed by the monitor and the hubs through hooks set up by the app
    "hostevents": {"core", "store", "recording", "hostevents"},
    "api": {"core", "store", "hms", "allocation", "recording", "hubs", "hostevents", "api"},
    # LTI sits beside the API and uses its errors, security and pages
    "lti": {"core", "store", "hms", "allocation", "recording", "hubs", "hostevents", "api", "lti"},
    "entry": {"core", "store", "hms", "allocation", "recording", "hubs", "hostevents", "api", "lti", "entry"},
    # the load tester drives the hub from outside: it may use the hub's parts and start it (server.serve),
    # never the command line that starts the load tester (checked below)
    "load_tests": {
        "core",
        "store",
        "hms",
        "allocation",
        "recording",
        "hubs",
        "hostevents",
        "api",
        "lti",
        "entry",
        "load_tests",
    },
}

EXCEPTIONS: set[tuple[str, str]] = {
    # `proctorhub loadtest` and `proctorhub demo` hand over to the load tester (lazily, inside the command)
    ("server.cli", "load_tests"),
}

PURE = (
    "server.protocol",
    "server.errors",
    "server.topics",
    "server.hubs.ratelimit",
    "server.allocation.planner",
    "server.allocation.planner_proctors",
    "server.recording.monitor.intervals",
    "server.recording.monitor.timeline",
    "server.recording.monitor.witnesses",
    "server.recording.monitor.compaction",
    "server.recording.monitor.alerts",
    "server.recording.monitor.report",
    "server.recording.archive.layout",
    "server.recording.archive.admission",
    "server.hostevents.catalog",
    "server.hostevents.schedule",
    "server.hostevents.signing",
    "server.lti.messages",
    "server.api.lti_config",
    "server.lti.acs_rules",
)
"""Pure cores: state in, decisions out. They import only each other and plain records."""
PURE_MAY_IMPORT = (
    *PURE,
    "server.store.records",
    "server.store.outbox",  # the Delivery record (its Protocol is never called from a pure core)
    "server.store.lti",  # LTI records (the same)
    "server.recording.archive.contract",
)
IO_LIBRARIES = (
    "asyncio",
    "socket",
    "httpx",
    "redis",
    "boto3",
    "botocore",
    "starlette",
    "uvicorn",
    "websockets",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    best: tuple[int, str] | None = None
    for layer, prefixes in LAYERS.items():
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > best[0]
            ):
                best = (len(prefix), layer)
    return None if best is None else best[1]


def imports(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            # `from server.x import y` may import the submodule server.x.y
            for alias in node.names:
                yield f"{base}.{alias.name}"


def sources() -> list[Path]:
    return sorted(p for d in ("server", "load_tests") for p in (ROOT / d).rglob("*.py"))


def arrows() -> Iterator[tuple[str, str, str, str]]:
    """(module, its layer, imported module, its layer) for every project-internal import."""
    for path in sources():
        module = module_name(path)
        own = layer_of(module)
        assert own is not None, f"{module} belongs to no layer: add it to LAYERS"
        for target in imports(path):
            other = layer_of(target)
            if other is not None and target.split(".")[0] in ("server", "load_tests"):
                yield module, own, target, other


def test_every_import_points_down_the_layers() -> None:
    wrong = sorted(
        {
            f"{module} ({own}) imports {target} ({other})"
            for module, own, target, other in arrows()
            if other not in ALLOWED.get(own, set())
            and not any(module == a and (target == b or target.startswith(b + ".")) for a, b in EXCEPTIONS)
        }
    )
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


@pytest.mark.parametrize("module", PURE)
def test_pure_cores_import_no_io(module: str) -> None:
    path = ROOT / (module.replace(".", "/") + ".py")
    found = set(imports(path))
    io = sorted(m for m in found if m.split(".")[0] in IO_LIBRARIES)
    project = sorted(
        m
        for m in found
        if m.startswith(("server.", "load_tests."))
        and layer_of(m) is not None
        and not any(m == p or m.startswith(p + ".") for p in PURE_MAY_IMPORT)
        and not _is_name_of(m)
        and not (ROOT / m.replace(".", "/")).is_dir()  # a package: its modules are checked by name
    )
    assert not io and not project, f"{module} imports I/O {io} or impure parts {project}"


def _is_name_of(imported: str) -> bool:
    """`from server.protocol import Outbound` also yields `server.protocol.Outbound`: a name, not a module."""
    parent = imported.rpartition(".")[0]
    return (
        any(parent == p for p in PURE_MAY_IMPORT)
        and not (ROOT / (imported.replace(".", "/") + ".py")).exists()
    )
