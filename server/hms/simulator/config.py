"""What one simulated 100ms workspace is: keys, its one template, webhook target, timings, storage.

`SimulatorConfig` is built by the caller (the hub's embedded mode, tests) or from the environment by
`config_from_env` (`proctorhub simulate-100ms`). Everything is validated here, at construction.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from server.config import ConfigError, Settings


def new_id() -> str:
    """A 24-hex id, the shape of 100ms room, session, recording and asset ids (contract §1.1)."""
    return secrets.token_hex(12)


@dataclass(frozen=True)
class S3Target:
    """Recordings go to this bucket, as with a room's `recording_info.upload_info` (contract §4.2)."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: str | None = None


@dataclass(frozen=True)
class LocalTarget:
    """Recordings are written under `root` (the stand-in for a bucket); paths are `file://` URLs."""

    root: str | Path
    prefix: str = ""


@dataclass
class SimulatorConfig:
    access_key: str
    secret: str
    template_id: str = "proctorhub-template"
    roles: frozenset[str] = frozenset({"candidate", "proctor"})
    region: str = "in"  # the template's region; what `"region": "auto"` resolves to
    webhook_url: str | None = None
    webhook_headers: Mapping[str, str] = field(default_factory=dict)
    webhook_retry_delays: tuple[float, ...] = (1.0, 3.0, 10.0)
    webhook_timeout_s: float = 5.0  # not documented by 100ms (contract §3.1 [gap])
    webhook_concurrency: int = 4  # first attempts run in emission order with 1
    webhook_transport: httpx.AsyncBaseTransport | None = None  # e.g. ASGITransport: deliver in-process
    reconnect_window_s: float = 60.0
    recording_delay_s: float = 2.0
    remove_delay_s: float = 0.0  # lag of the asynchronous remove-peers / end-room
    skew_s: float = 10.0  # clock skew allowed on nbf / exp
    storage: S3Target | LocalTarget | None = None  # None: kept in memory ("stored with 100ms")
    control_key: str | None = None  # /_sim wants `Authorization: Bearer <key>` when set
    clock: Callable[[], float] = time.time
    seed: int = 0
    app_id: str = field(default_factory=new_id)
    account_id: str = field(default_factory=new_id)

    def __post_init__(self) -> None:
        self.roles = frozenset(self.roles)
        self.webhook_headers = dict(self.webhook_headers)
        self.webhook_retry_delays = tuple(float(d) for d in self.webhook_retry_delays)
        if not self.access_key:
            raise ValueError("SimulatorConfig.access_key must not be empty")
        if len(self.secret.encode()) < 32:
            raise ValueError("SimulatorConfig.secret must be at least 32 bytes (HS256, RFC 7518)")
        if self.webhook_url is not None and not self.webhook_url.startswith(("http://", "https://")):
            raise ValueError(f"SimulatorConfig.webhook_url must be an http(s) URL, got {self.webhook_url!r}")
        if any(d < 0 for d in self.webhook_retry_delays):
            raise ValueError("SimulatorConfig.webhook_retry_delays must not be negative")
        if self.control_key is not None and len(self.control_key.encode()) < 16:
            raise ValueError("SimulatorConfig.control_key must be at least 16 bytes")
        if self.webhook_concurrency < 1:
            raise ValueError("SimulatorConfig.webhook_concurrency must be at least 1")
        for name in ("reconnect_window_s", "recording_delay_s", "remove_delay_s", "skew_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"SimulatorConfig.{name} must not be negative")


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"Config '{name}' must be a number, got {raw!r}.") from None
    if value < 0:
        raise ConfigError(f"Config '{name}' must not be negative, got {raw!r}.")
    return value


def _delays(env: Mapping[str, str], name: str) -> tuple[float, ...]:
    raw = env.get(name, "")
    if raw == "":
        return (1.0, 3.0, 10.0)
    try:
        delays = tuple(float(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"Config '{name}' must be comma-separated seconds, got {raw!r}.") from None
    if any(d < 0 for d in delays):
        raise ConfigError(f"Config '{name}' must not contain negative delays, got {raw!r}.")
    return delays


def sim_prefix(env: Mapping[str, str]) -> str:
    """HMS_SIM_PREFIX: the key prefix the simulator records under (default "100ms")."""
    return env.get("HMS_SIM_PREFIX", "100ms")


def config_from_env(settings: Settings, env: Mapping[str, str]) -> SimulatorConfig:
    """The standalone simulator's config: the hub's HMS_*/S3_*/ARCHIVE_DIR plus HMS_SIM_* settings.

    HMS_SIM_WEBHOOK_URL, HMS_SIM_RECONNECT_WINDOW_S, HMS_SIM_RECORDING_DELAY_S,
    HMS_SIM_WEBHOOK_RETRY_DELAYS (e.g. "1,3,10"), HMS_SIM_SEED, HMS_SIM_PREFIX (recordings key prefix,
    default "100ms"), HMS_SIM_CONTROL_KEY (Bearer key for /_sim, at least 16 bytes).
    """
    url = env.get("HMS_SIM_WEBHOOK_URL") or None
    if url is not None and not url.startswith(("http://", "https://")):
        raise ConfigError(f"Config 'HMS_SIM_WEBHOOK_URL' must be an http(s) URL, got {url!r}.")
    headers = (
        {settings.hms_webhook_header: settings.hms_webhook_secret} if settings.hms_webhook_secret else {}
    )
    prefix = sim_prefix(env)
    control_key = env.get("HMS_SIM_CONTROL_KEY") or None
    if control_key is not None and len(control_key.encode()) < 16:
        raise ConfigError("Config 'HMS_SIM_CONTROL_KEY' must be at least 16 bytes long.")
    storage: S3Target | LocalTarget
    if settings.s3_bucket:
        storage = S3Target(
            bucket=settings.s3_bucket,
            prefix=prefix,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
        )
    else:
        storage = LocalTarget(root=settings.archive_dir, prefix=prefix)
    seed_raw = env.get("HMS_SIM_SEED", "0")
    try:
        seed = int(seed_raw)
    except ValueError:
        raise ConfigError(f"Config 'HMS_SIM_SEED' must be an integer, got {seed_raw!r}.") from None
    return SimulatorConfig(
        access_key=settings.hms_access_key,
        secret=settings.hms_secret,
        template_id=settings.hms_template_id,
        roles=frozenset({settings.hms_candidate_role, settings.hms_proctor_role}),
        webhook_url=url,
        webhook_headers=headers,
        webhook_retry_delays=_delays(env, "HMS_SIM_WEBHOOK_RETRY_DELAYS"),
        reconnect_window_s=_float(env, "HMS_SIM_RECONNECT_WINDOW_S", 60.0),
        recording_delay_s=_float(env, "HMS_SIM_RECORDING_DELAY_S", 2.0),
        storage=storage,
        seed=seed,
        control_key=control_key,
    )
