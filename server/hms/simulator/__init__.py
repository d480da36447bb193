"""A faithful local stand-in for 100ms (the 100ms contract in docs/100ms.md).

REST API (/v2), a media plane for simulated clients (/media), webhooks with 100ms's retry policy,
per-peer stream recordings written to S3 or a folder, and fault injection (/_sim). See
docs/simulator.md.
"""

from server.hms.simulator.config import LocalTarget, S3Target, SimulatorConfig, config_from_env
from server.hms.simulator.faults import KINDS as FAULT_KINDS
from server.hms.simulator.faults import FaultRule, Injection
from server.hms.simulator.simulator import Simulator
from server.hms.simulator.webhooks import Delivery

__all__ = [
    "FAULT_KINDS",
    "Delivery",
    "FaultRule",
    "Injection",
    "LocalTarget",
    "S3Target",
    "Simulator",
    "SimulatorConfig",
    "config_from_env",
]
