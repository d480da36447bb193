"""`proctorhub loadtest` against a cluster it starts itself: two hub nodes on one redis-server and one
100ms simulator, users spread round robin, one node SIGKILLed mid-exam. Its candidates come back on the
other node to the seats they had; the other node's users never notice. Loopback only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.servers import ROOT

CLUSTER = """\
name = "cluster-kill"
candidates = 60
proctors = 6
exam_s = 25
drain_s = 5
token_ttl_s = 60
room_size = 10
proctor_load = 10
protocol = "mixed"
workers = 1
[arrival]
curve = "ramp"
ramp_s = 4
[finish]
spread_s = 3
[faults]
node_kill_at_s = 12
[hub]
store = "redis"
nodes = 2
simulator = "standalone"
grace_s = 5
"""


def test_a_node_killed_mid_exam_loses_no_seat_and_drops_no_bystander(tmp_path: Path) -> None:
    scenario = tmp_path / "cluster-kill.toml"
    scenario.write_text(CLUSTER)
    done = subprocess.run(
        [sys.executable, "-m", "server", "loadtest", str(scenario), "--out", str(tmp_path / "out")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    (path,) = (tmp_path / "out").glob("*/report.json")
    report = json.loads(path.read_text())
    kill, figures = report["node_kill"], report["figures"]
    assert len(report["target"]["nodes"]) == 2 and report["target"]["nodes"][0].startswith(
        "http://127.0.0.1:"
    )
    # the killed node held a fair share of the candidates (round robin), and every one came back
    assert 15 <= kill["dead_node_candidates"] <= 45, kill
    assert kill["seats_lost"] == 0 and kill["seats_never_back"] == [] and kill["seats_moved"] == [], kill
    assert kill["kill_recovery_s"] is not None, kill
    assert kill["bystanders_dropped"] == 0, kill["bystanders"]
    assert figures["never_assigned"] == 0
    checks = {c["goal"]: c for c in report["verdict"]["checks"]}
    assert checks["seats_lost"]["ok"] and checks["bystanders_dropped"]["ok"], checks
    assert "node kill: node 1" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    assert report["processes_stopped"]["hub"] in (0, -15) and "hub2" in report["processes_stopped"]
