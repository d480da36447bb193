"""web/lib/hub.js, tested by Node's own test runner against a real hub (web/tests/*.test.mjs)."""

from __future__ import annotations

import os
import shutil
import subprocess

from tests.conftest import API_KEY, HubFactory
from tests.servers import ROOT

WEB = ROOT / "web"


def node_command() -> list[str]:
    node = shutil.which("node")
    assert node, "node is needed for web/tests (scripts/test installs it)"
    major = int(
        subprocess.run([node, "--version"], capture_output=True, text=True).stdout.lstrip("v").split(".")[0]
    )
    # Node 20 has WebSocket behind a flag; 22 has it on; older ones use the `ws` package (web/package.json).
    return [node, "--experimental-websocket"] if 20 <= major < 22 else [node]


def test_hub_js_against_the_real_hub(hub_factory: HubFactory) -> None:
    hub = hub_factory(HUB_SESSION_WARN_S=3600, HUB_RATE_PER_S=20, HUB_RATE_BURST=40)
    files = sorted(str(p.relative_to(WEB)) for p in (WEB / "tests").glob("*.test.mjs"))
    assert files
    env = {**os.environ, "HUB_HTTP": hub.http, "HUB_API_KEY": API_KEY, "NODE_NO_WARNINGS": "1"}
    result = subprocess.run(
        [*node_command(), "--test", "--test-reporter=spec", *files],
        cwd=WEB,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
