"""`proctorhub simulate-100ms`: the simulator as its own process, configured from the environment."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from server.hms.tokens import mint_app_token, mint_management_token
from tests.servers import ROOT, free_port, wait_for_port

SECRET = "cli-secret-" + "c" * 32


def _start(env: dict[str, str], tmp_path: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    log = tmp_path / "sim.log"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("HMS_", "S3_", "HUB_", "ARCHIVE_"))}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", "simulate-100ms", "--host", "127.0.0.1", "--port", str(port)],
            env={**base_env, "ARCHIVE_DIR": str(tmp_path / "archive"), "LOG_LEVEL": "WARNING", **env},
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_for_port(port, proc=proc)
    return proc, port, log


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_the_standalone_simulator_uses_and_prints_the_given_keys(tmp_path: Path) -> None:
    proc, port, log = _start(
        {"HMS_ACCESS_KEY": "cli-key", "HMS_SECRET": SECRET, "HMS_SIM_RECORDING_DELAY_S": "0"}, tmp_path
    )
    try:
        base = f"http://127.0.0.1:{port}"
        token, _ = mint_management_token(access_key="cli-key", secret=SECRET, ttl_s=600, now=time.time())
        auth = {"Authorization": f"Bearer {token}"}
        room = httpx.post(f"{base}/v2/rooms", json={"name": "cli-room"}, headers=auth).json()
        app_token = mint_app_token(
            access_key="cli-key",
            secret=SECRET,
            room_id=room["id"],
            user_id="cand-1",
            role="candidate",
            ttl_s=600,
            now=time.time(),
        ).token
        peer = httpx.post(f"{base}/media/join", json={"token": app_token}).json()
        httpx.post(f"{base}/media/peers/{peer['peer_id']}/publish", json={"video": True})
        httpx.post(f"{base}/media/peers/{peer['peer_id']}/leave")
        deadline = time.monotonic() + 5
        while not list((tmp_path / "archive" / "100ms").rglob("*.mp4")) and time.monotonic() < deadline:
            time.sleep(0.05)
        [recording] = (tmp_path / "archive" / "100ms" / room["id"]).rglob("*.mp4")
        assert peer["peer_id"] in str(recording)
        assert httpx.get(f"{base}/v2/rooms").status_code == 401
    finally:
        _stop(proc)
    output = log.read_text()
    assert "HMS_ACCESS_KEY=cli-key" in output
    assert f"HMS_SECRET={SECRET}" in output
    assert "generated" not in output


def test_without_keys_it_generates_and_prints_them(tmp_path: Path) -> None:
    proc, port, log = _start({}, tmp_path)
    try:
        deadline = time.monotonic() + 5
        while "HMS_SECRET=" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        output = log.read_text()
        key = re.search(r"HMS_ACCESS_KEY=(\S+)", output)
        secret = re.search(r"HMS_SECRET=(\S+)", output)
        assert key and secret and "generated for this run" in output
        token, _ = mint_management_token(access_key=key[1], secret=secret[1], ttl_s=600, now=time.time())
        answer = httpx.get(f"http://127.0.0.1:{port}/v2/rooms", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200
    finally:
        _stop(proc)


def test_a_bad_setting_fails_at_start(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "server", "simulate-100ms", "--port", str(free_port())],
        env={**os.environ, "HMS_SIM_WEBHOOK_URL": "ftp://nope"},
        cwd=ROOT,
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert b"HMS_SIM_WEBHOOK_URL" in done.stderr
