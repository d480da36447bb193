"""The load tester's layout holds: no import cycles in load_tests (between modules or between its
subpackages), load_tests never imports server.cli, and server imports load_tests only from
server/cli.py, inside a function (the `loadtest` and `demo` subcommands), so the hub never loads it;
every bench is wired to `proctorhub loadtest NAME` and runs as `python -m load_tests.benches.MODULE`.

Read from the source (ast), not by importing: every import counts, also those inside functions and
under `if TYPE_CHECKING`, since a cycle there is still two modules that need each other."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from load_tests import loadtest
from load_tests.benches import ALIASES, BENCHES
from tests.servers import ROOT


def modules(package: str) -> dict[str, Path]:
    """Dotted name -> file, for every module of a package (a package is its __init__.py)."""
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports(path: Path, known: set[str]) -> Iterator[tuple[str, bool]]:
    """(module imported, at the top level of the file?) for each import in a file."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, id(node) in top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                yield (name if name in known else node.module), id(node) in top


def graph(package: str) -> dict[str, set[str]]:
    found = modules(package)
    known = set(found)
    return {
        name: {target for target, _ in imports(path, known) if target in known and target != name}
        for name, path in found.items()
    }


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of a directed graph (as a path back to its start), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_between_load_tests_modules() -> None:
    assert cycle(graph("load_tests")) is None


def test_no_import_cycle_between_load_tests_subpackages() -> None:
    packages: dict[str, set[str]] = {}
    for source, targets in graph("load_tests").items():
        home = ".".join(source.split(".")[:2])
        packages.setdefault(home, set()).update(
            ".".join(t.split(".")[:2]) for t in targets if ".".join(t.split(".")[:2]) != home
        )
    assert cycle(packages) is None


def test_load_tests_never_imports_the_hubs_command_line() -> None:
    for name, path in modules("load_tests").items():
        used = {target for target, _ in imports(path, set())}
        assert not {t for t in used if t == "server.cli" or t.startswith("server.cli.")}, name


def test_server_imports_load_tests_only_lazily_from_its_command_line() -> None:
    for name, path in modules("server").items():
        for target, at_top in imports(path, set()):
            if target == "load_tests" or target.startswith("load_tests."):
                assert name == "server.cli" and not at_top, f"{name} imports {target}"


@pytest.mark.parametrize("name", [*BENCHES, *ALIASES])
def test_every_bench_answers_help_through_proctorhub_loadtest(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    module = BENCHES[ALIASES.get(name, name)][0]
    with pytest.raises(SystemExit) as done:
        loadtest.main([name, "--help"])
    assert done.value.code == 0
    assert f"python -m load_tests.benches.{module}" in capsys.readouterr().out


@pytest.mark.parametrize("module", sorted(module for module, _ in BENCHES.values()))
def test_every_bench_runs_as_a_module(module: str) -> None:
    source = (ROOT / "load_tests" / "benches" / f"{module}.py").read_text()
    assert 'if __name__ == "__main__":\n    sys.exit(main())' in source
