"""Ports for the servers tests and load tests start: never one the kernel may hand a client socket."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest

from load_tests.run import procs


def ephemeral_low() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def test_ports_are_below_the_ephemeral_range_bindable_and_never_given_twice() -> None:
    ports = [procs.free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(procs.PORT_FLOOR <= p < ephemeral_low() for p in ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))


def test_xdist_workers_pick_from_blocks_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    blocks = []
    for worker in ("gw0", "gw1"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        blocks.append(procs.port_block())
    (low0, high0), (low1, high1) = blocks
    assert low0 == procs.PORT_FLOOR and high0 <= low1 and high1 <= ephemeral_low()
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    assert all(low1 <= procs.free_port() < high1 for _ in range(50))


def test_a_port_browsers_refuse_is_never_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chromium will not open 127.0.0.1:10080 (ERR_UNSAFE_PORT): a hub there fails every page test."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    pick, first = random.randrange, iter([10080, 10080])  # then picks as before
    monkeypatch.setattr(procs.random, "randrange", lambda low, high: next(first, 0) or pick(low, high))
    port = procs.free_port()
    assert port != 10080
