"""Settings, read once from the environment and validated at start-up.

Every setting has a documented default (see README.md). A bad value raises
`ConfigError` whose message names the setting, so start-up fails with one line.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import os
import secrets
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar, cast
from urllib.parse import urlsplit

from server.auth import DEFAULT_MAX_TTL_S, TokenRules

T = TypeVar("T")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_RECORDING_MAX_BYTES = 16 * 1024**3
"""HMS_RECORDING_MAX_BYTES: far above a 12-hour session (100ms's ceiling) at 1080p, about 7 GB."""


class ConfigError(ValueError):
    """A setting is missing or has a bad value; the message names it."""


@dataclass(frozen=True)
class Settings:
    hub_secret: str
    embedded_secret: bool = False
    api_key: str | None = None
    redis_url: str | None = None
    log_level: str = "INFO"
    presence_grace_s: float = 20.0
    heartbeat_s: float = 20.0
    heartbeat_timeout_s: float | None = None
    max_message_bytes: int = 65536
    auth_timeout_s: float = 5.0
    rate_per_s: float = 20.0
    rate_burst: int = 40
    send_queue_size: int = 1024
    send_timeout_s: float = 10.0
    session_warn_s: float = 60.0
    node_id: str = field(default_factory=lambda: default_node_id())
    node_ttl_s: float = 10.0
    stats_interval_s: float = 1.0
    shutdown_s: float = 20.0
    # joins attaching at once (under the Redis pool's 64 connections) and how long one may wait in line
    join_concurrency: int = 48
    join_deadline_s: float = 15.0
    allowed_origins: tuple[str, ...] = ()
    frame_ancestors: tuple[str, ...] = ("'self'",)
    # 100ms
    hms_access_key: str = ""
    hms_secret: str = ""
    hms_api_base: str | None = None
    hms_candidate_role: str = "candidate"
    hms_proctor_role: str = "proctor"
    hms_template_id: str = "proctorhub-template"
    hms_region: str = "auto"
    hms_webhook_header: str = "X-Proctorhub-Webhook-Secret"
    hms_webhook_secret: str = ""
    hms_room_prefix: str = "proctorhub"
    hms_webhook_allow_nets: tuple[str, ...] = ()
    hms_webhook_relay: tuple[tuple[str, str], ...] = ()
    hms_webhook_workers: int = 64
    # recordings storage: S3 when a bucket is set, else a local folder
    s3_bucket: str | None = None
    s3_prefix: str = "proctorhub"
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    archive_dir: str = "archive"
    # recording monitor
    gap_threshold_s: float = 10.0
    recording_deadline_s: float = 900.0
    reconcile_s: float = 300.0
    media_burst: int = 20
    """media.status (and media.observed) changes one user may store at once, on this node..."""
    media_refill_s: float = 10.0
    """...then one per this many seconds; over it only the latest state is kept (docs/protocol.md)."""
    signal_budget: int = 256
    """Raw toggles a candidate's timeline holds before the oldest are folded into intervals..."""
    signal_keep: int = 64
    """...keeping this many, the newest."""
    archive_url_ttl_s: float = 3600.0
    # browser backfill (extension E15): see docs/operations.md
    backfill_min_s: float = 5.0
    backfill_slack_s: float = 1.0
    backfill_extend_s: float = 30.0
    backfill_release_step_s: float = 10.0
    backfill_segment_max_s: float = 60.0
    backfill_max_bytes: int = 64 * 1024 * 1024
    backfill_duration_tolerance_s: float = 2.0
    backfill_upload_ttl_s: float = 900.0
    backfill_segment_s: float = 30.0
    """How long the candidate page's local segments are (client-config `backfill.segment_s`)."""
    # fail closed (issue 12): where the simulator may run, and which recordings the archiver takes
    hms_simulator: str | None = None
    hms_recording_bucket: str | None = None
    hms_recording_prefix: str | None = None
    hms_recording_hosts: tuple[str, ...] = ()
    hms_recording_max_bytes: int = DEFAULT_RECORDING_MAX_BYTES
    # session tokens and the client address (issue 12): see docs/operations.md
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_max_ttl_s: float = DEFAULT_MAX_TTL_S
    jwks_url: str | None = None
    trusted_proxies: tuple[str, ...] = ()
    # signed events to the host app (server/hostevents)
    events_urls: tuple[str, ...] = ()
    events_secret: str = ""
    events_timeout_s: float = 10.0
    events_backoff_base_s: float = 5.0
    events_retry_for_s: float = 86_400.0
    events_report_check_s: float = 10.0
    # LTI Proctoring Services (docs/lti.md)
    lti_private_key: str | None = None
    lti_key_id: str | None = None
    lti_previous_public_key: str | None = None
    lti_base_url: str | None = None
    lti_session_ttl_s: float = 4 * 3600.0
    lti_acs_flag_gap_s: float = 60.0
    lti_acs_retry_s: float = 30.0

    @property
    def token_rules(self) -> TokenRules:
        """What every session token must also satisfy, whoever signed it."""
        return TokenRules(self.jwt_audience, self.jwt_issuer, self.jwt_max_ttl_s)

    @property
    def pong_timeout_s(self) -> float:
        """How long a ping may go unanswered: HUB_HEARTBEAT_TIMEOUT_S, else one heartbeat."""
        return self.heartbeat_s if self.heartbeat_timeout_s is None else self.heartbeat_timeout_s

    @property
    def hms_simulated(self) -> bool:
        """No HMS_API_BASE: the in-process 100ms simulator stands in for 100ms."""
        return self.hms_api_base is None

    @property
    def store_kind(self) -> str:
        return "redis" if self.redis_url else "memory"

    @property
    def recording_bucket(self) -> str | None:
        """The bucket 100ms uploads recordings to: HMS_RECORDING_BUCKET, else S3_BUCKET (named in rooms)."""
        return self.hms_recording_bucket or self.s3_bucket

    @property
    def recording_prefix(self) -> str:
        """Where in it: HMS_RECORDING_PREFIX, else S3_PREFIX (the prefix rooms' recording_info names)."""
        return self.s3_prefix if self.hms_recording_prefix is None else self.hms_recording_prefix


def default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


def _plain(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _number(parse: Callable[[str], T], *, minimum: float, maximum: float) -> Callable[[str, str], T]:
    def read(name: str, raw: str) -> T:
        try:
            value = parse(raw)
        except ValueError:
            kind = "an integer" if parse is int else "a number"
            raise ConfigError(f"Config '{name}' must be {kind}, got {raw!r}.") from None
        if not minimum <= value <= maximum:  # type: ignore[operator]
            raise ConfigError(
                f"Config '{name}' must be between {_plain(minimum)} and {_plain(maximum)}, got {raw!r}."
            )
        return value

    return read


def _log_level(name: str, raw: str) -> str:
    level = raw.strip().upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"Config '{name}' must be one of {', '.join(LOG_LEVELS)}, got {raw!r}.")
    return level


def _redis_url(name: str, raw: str) -> str:
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"Config '{name}' must start with redis://, rediss:// or unix://, got {raw!r}.")
    return raw


def _secret(minimum: int) -> Callable[[str, str], str]:
    def read(name: str, raw: str) -> str:
        if len(raw.encode()) < minimum:
            raise ConfigError(f"Config '{name}' must be at least {minimum} bytes long.")
        return raw

    return read


def _origins(name: str, raw: str) -> tuple[str, ...]:
    origins = tuple(o.strip() for o in raw.split(",") if o.strip())
    for origin in origins:
        if not origin.startswith(("http://", "https://")):
            raise ConfigError(f"Config '{name}' entries must be http(s) origins, got {origin!r}.")
    return origins


def _frame_ancestors(name: str, raw: str) -> tuple[str, ...]:
    """CSP `frame-ancestors` sources: 'self', 'none' or http(s) origins (a leading `*.` host allowed)."""
    sources = tuple(s for s in raw.replace(",", " ").split() if s)
    for source in sources:
        if source in ("'self'", "'none'"):
            continue
        scheme, sep, host = source.partition("://")
        if scheme not in ("http", "https") or not sep or not host or any(c in host for c in "/;'\"\\"):
            raise ConfigError(
                f"Config '{name}' entries must be 'self', 'none' or http(s) origins, got {source!r}."
            )
    if "'none'" in sources and len(sources) > 1:
        raise ConfigError(f"Config '{name}' may not combine 'none' with other sources.")
    return sources or ("'self'",)


def _url(name: str, raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ConfigError(f"Config '{name}' must be an http(s) URL, got {raw!r}.")
    return raw.rstrip("/")


def _token_like(name: str, raw: str) -> str:
    if not 1 <= len(raw) <= 128 or not all(c.isalnum() or c in "-_.:" for c in raw):
        raise ConfigError(f"Config '{name}' must be 1-128 letters, digits or - _ . :, got {raw!r}.")
    return raw


def _choice(*choices: str) -> Callable[[str, str], str]:
    def read(name: str, raw: str) -> str:
        if raw not in choices:
            raise ConfigError(f"Config '{name}' must be one of {', '.join(choices)}, got {raw!r}.")
        return raw

    return read


def _header_name(name: str, raw: str) -> str:
    if not raw or not all(c.isalnum() or c == "-" for c in raw):
        raise ConfigError(f"Config '{name}' must be an HTTP header name (letters, digits, -), got {raw!r}.")
    return raw


def _networks(name: str, raw: str) -> tuple[str, ...]:
    nets: list[str] = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            nets.append(str(ipaddress.ip_network(part)))
        except ValueError as exc:
            raise ConfigError(
                f"Config '{name}' entries must be CIDR networks like 10.0.0.0/8: {exc}."
            ) from None
    return tuple(nets)


def _relays(name: str, raw: str) -> tuple[tuple[str, str], ...]:
    """`prefix=url,prefix=url`: rooms named `{prefix}-...` belong to the environment at `url`."""
    relays: dict[str, str] = {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        prefix, sep, url = (x.strip() for x in part.partition("="))
        if not sep:
            raise ConfigError(f"Config '{name}' entries must be prefix=url, got {part!r}.")
        _token_like(name, prefix)
        _url(name, url)
        if prefix in relays:
            raise ConfigError(f"Config '{name}' names the prefix {prefix!r} twice.")
        relays[prefix] = url
    return tuple(relays.items())


def _text(name: str, raw: str) -> str:
    if len(raw) > 1024:
        raise ConfigError(f"Config '{name}' must be at most 1024 characters.")
    return raw


def _key_prefix(name: str, raw: str) -> str:
    parts = [p for p in _text(name, raw).split("/") if p]
    if any(p in (".", "..") or "\\" in p for p in parts):
        raise ConfigError(f"Config '{name}' must not have '.' or '..' segments or backslashes, got {raw!r}.")
    return "/".join(parts)


def _hosts(name: str, raw: str) -> tuple[str, ...]:
    """Host names (`media.example.com`) or suffixes (`*.example.com`), lower case, no scheme or port."""
    hosts: list[str] = []
    for part in (p.strip().lower() for p in raw.split(",")):
        if not part:
            continue
        bare = part.removeprefix("*.")
        labels = bare.split(".")
        if len(labels) < 2 or not all(
            label and len(label) <= 63 and all(c.isalnum() or c == "-" for c in label) for label in labels
        ):
            raise ConfigError(
                f"Config '{name}' entries must be host names like media.example.com or *.example.com, "
                f"got {part!r}."
            )
        hosts.append(part)
    return tuple(hosts)


def http_urls(raw: str) -> tuple[str, ...]:
    """Comma-separated http(s) URLs, each kept as written (a trailing slash may matter to a receiver);
    ValueError naming the first bad one."""
    urls = tuple(u.strip() for u in raw.split(",") if u.strip())
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
            raise ValueError(f"entries must be http(s) URLs, got {url!r}")
    if len(set(urls)) != len(urls):
        raise ValueError("names a URL twice")
    return urls


def _urls(name: str, raw: str) -> tuple[str, ...]:
    try:
        return http_urls(raw)
    except ValueError as exc:
        raise ConfigError(f"Config '{name}' {exc}.") from None


WEBHOOK_SECRET_PREFIX = "whsec_"
WEBHOOK_KEY_BYTES = (24, 64)
"""Standard Webhooks: a secret is `whsec_` and the base64 of 24 to 64 random bytes."""


def webhook_key(secret: str) -> bytes:
    """The key bytes of a `whsec_...` secret; ValueError saying what is wrong with it."""
    if not secret.startswith(WEBHOOK_SECRET_PREFIX):
        raise ValueError(f"must start with {WEBHOOK_SECRET_PREFIX}")
    try:
        key = base64.b64decode(secret[len(WEBHOOK_SECRET_PREFIX) :], validate=True)
    except binascii.Error:
        raise ValueError(f"must be {WEBHOOK_SECRET_PREFIX} followed by standard base64") from None
    low, high = WEBHOOK_KEY_BYTES
    if not low <= len(key) <= high:
        raise ValueError(f"must encode {low} to {high} bytes, got {len(key)}")
    return key


def _webhook_secret(name: str, raw: str) -> str:
    try:
        webhook_key(raw)
    except ValueError as exc:
        raise ConfigError(
            f"Config '{name}' {exc} (e.g. whsec_ and the base64 of 32 random bytes: "
            "`python -c \"import base64,os;print('whsec_'+base64.b64encode(os.urandom(32)).decode())\"`)."
        ) from None
    return raw


def _node_id(name: str, raw: str) -> str:
    if not raw or len(raw) > 64 or any(c.isspace() for c in raw):
        raise ConfigError(f"Config '{name}' must be 1-64 characters without spaces, got {raw!r}.")
    return raw


def _claim_text(name: str, raw: str) -> str:
    if len(raw) > 256 or not raw.isprintable():
        raise ConfigError(f"Config '{name}' must be at most 256 printable characters, got {raw!r}.")
    return raw


def _proxies(name: str, raw: str) -> tuple[str, ...]:
    """Addresses or networks (10.0.0.7, 10.0.0.0/8, ::1): `*` is refused, trusting everyone is the bug."""
    if "*" in raw:
        raise ConfigError(f"Config '{name}' must list addresses or networks; '*' would trust any client.")
    return _networks(name, raw)


def _pem(private: bool) -> Callable[[str, str], str]:
    """An RSA key in PEM (private to sign, public to publish); `\\n` may stand for newlines."""

    def read(name: str, raw: str) -> str:
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

        pem = raw.replace("\\n", "\n").strip() + "\n"
        kind = "private" if private else "public"
        try:
            key: object = (
                load_pem_private_key(pem.encode(), None) if private else load_pem_public_key(pem.encode())
            )
        except (ValueError, TypeError):
            raise ConfigError(f"Config '{name}' must be an unencrypted RSA {kind} key in PEM.") from None
        wanted = rsa.RSAPrivateKey if private else rsa.RSAPublicKey
        if not isinstance(key, wanted) or key.key_size < 2048:
            raise ConfigError(f"Config '{name}' must be an RSA {kind} key of at least 2048 bits.")
        return pem

    return read


# env var -> (Settings field, parser)
_READERS: dict[str, tuple[str, Callable[[str, str], object]]] = {
    # HS256 keys under 32 bytes are refused by RFC 7518 (and warned about by PyJWT).
    "HUB_SECRET": ("hub_secret", _secret(32)),
    "HUB_API_KEY": ("api_key", _secret(16)),
    "REDIS_URL": ("redis_url", _redis_url),
    "LOG_LEVEL": ("log_level", _log_level),
    "HUB_PRESENCE_GRACE_S": ("presence_grace_s", _number(float, minimum=0, maximum=3600)),
    "HUB_HEARTBEAT_S": ("heartbeat_s", _number(float, minimum=0.1, maximum=600)),
    "HUB_HEARTBEAT_TIMEOUT_S": ("heartbeat_timeout_s", _number(float, minimum=0.1, maximum=600)),
    "HUB_MAX_MESSAGE_BYTES": ("max_message_bytes", _number(int, minimum=1024, maximum=16 * 1024 * 1024)),
    "HUB_AUTH_TIMEOUT_S": ("auth_timeout_s", _number(float, minimum=0.1, maximum=120)),
    "HUB_RATE_PER_S": ("rate_per_s", _number(float, minimum=0.1, maximum=100_000)),
    "HUB_RATE_BURST": ("rate_burst", _number(int, minimum=1, maximum=1_000_000)),
    "HUB_SEND_QUEUE": ("send_queue_size", _number(int, minimum=4, maximum=1_000_000)),
    "HUB_SEND_TIMEOUT_S": ("send_timeout_s", _number(float, minimum=0.1, maximum=600)),
    "HUB_SESSION_WARN_S": ("session_warn_s", _number(float, minimum=0, maximum=3600)),
    "HUB_NODE_ID": ("node_id", _node_id),
    "HUB_NODE_TTL_S": ("node_ttl_s", _number(float, minimum=1, maximum=600)),
    "HUB_STATS_INTERVAL_S": ("stats_interval_s", _number(float, minimum=0.05, maximum=60)),
    "HUB_SHUTDOWN_S": ("shutdown_s", _number(float, minimum=1, maximum=600)),
    "HUB_JOIN_CONCURRENCY": ("join_concurrency", _number(int, minimum=1, maximum=10_000)),
    "HUB_JOIN_DEADLINE_S": ("join_deadline_s", _number(float, minimum=0.1, maximum=600)),
    "HUB_ALLOWED_ORIGINS": ("allowed_origins", _origins),
    "HUB_FRAME_ANCESTORS": ("frame_ancestors", _frame_ancestors),
    "HMS_ACCESS_KEY": ("hms_access_key", _token_like),
    "HMS_SECRET": ("hms_secret", _secret(32)),
    "HMS_API_BASE": ("hms_api_base", _url),
    "HMS_CANDIDATE_ROLE": ("hms_candidate_role", _token_like),
    "HMS_PROCTOR_ROLE": ("hms_proctor_role", _token_like),
    "HMS_TEMPLATE_ID": ("hms_template_id", _token_like),
    "HMS_REGION": ("hms_region", _choice("auto", "in", "us", "eu")),
    "HMS_WEBHOOK_HEADER": ("hms_webhook_header", _header_name),
    "HMS_WEBHOOK_SECRET": ("hms_webhook_secret", _secret(16)),
    "HMS_ROOM_PREFIX": ("hms_room_prefix", _token_like),
    "HMS_WEBHOOK_ALLOW_NETS": ("hms_webhook_allow_nets", _networks),
    "HMS_WEBHOOK_RELAY": ("hms_webhook_relay", _relays),
    "HMS_WEBHOOK_WORKERS": ("hms_webhook_workers", _number(int, minimum=0, maximum=10_000)),
    "S3_BUCKET": ("s3_bucket", _token_like),
    "S3_PREFIX": ("s3_prefix", _key_prefix),
    "S3_ENDPOINT_URL": ("s3_endpoint_url", _url),
    "S3_REGION": ("s3_region", _token_like),
    "ARCHIVE_DIR": ("archive_dir", _text),
    "RECORDING_GAP_THRESHOLD_S": ("gap_threshold_s", _number(float, minimum=0.5, maximum=3600)),
    "RECORDING_DEADLINE_S": ("recording_deadline_s", _number(float, minimum=1, maximum=7 * 24 * 3600)),
    "RECORDING_RECONCILE_S": ("reconcile_s", _number(float, minimum=1, maximum=24 * 3600)),
    "RECORDING_MEDIA_BURST": ("media_burst", _number(int, minimum=1, maximum=10_000)),
    "RECORDING_MEDIA_REFILL_S": ("media_refill_s", _number(float, minimum=0.01, maximum=3600)),
    "RECORDING_SIGNAL_BUDGET": ("signal_budget", _number(int, minimum=16, maximum=100_000)),
    "RECORDING_SIGNAL_KEEP": ("signal_keep", _number(int, minimum=1, maximum=100_000)),
    # 7 days is the longest a SigV4 presigned URL may live
    "ARCHIVE_URL_TTL_S": ("archive_url_ttl_s", _number(float, minimum=1, maximum=7 * 86_400)),
    # browser backfill (extension E15)
    "BACKFILL_MIN_S": ("backfill_min_s", _number(float, minimum=0.1, maximum=3600)),
    "BACKFILL_SLACK_S": ("backfill_slack_s", _number(float, minimum=0, maximum=60)),
    "BACKFILL_EXTEND_S": ("backfill_extend_s", _number(float, minimum=0.5, maximum=3600)),
    "BACKFILL_RELEASE_STEP_S": ("backfill_release_step_s", _number(float, minimum=0, maximum=3600)),
    "BACKFILL_SEGMENT_MAX_S": ("backfill_segment_max_s", _number(float, minimum=0.5, maximum=3600)),
    "BACKFILL_MAX_BYTES": ("backfill_max_bytes", _number(int, minimum=1024, maximum=5 * 1024**3)),
    "BACKFILL_DURATION_TOLERANCE_S": (
        "backfill_duration_tolerance_s",
        _number(float, minimum=0, maximum=600),
    ),
    # 7 days is the longest a SigV4 presigned URL may live
    "BACKFILL_UPLOAD_TTL_S": ("backfill_upload_ttl_s", _number(float, minimum=1, maximum=7 * 86_400)),
    "BACKFILL_SEGMENT_S": ("backfill_segment_s", _number(float, minimum=0.5, maximum=600)),
    # fail closed (issue 12)
    "HMS_SIMULATOR": ("hms_simulator", _choice("embedded")),
    "HMS_RECORDING_BUCKET": ("hms_recording_bucket", _token_like),
    "HMS_RECORDING_PREFIX": ("hms_recording_prefix", _key_prefix),
    "HMS_RECORDING_HOSTS": ("hms_recording_hosts", _hosts),
    "HMS_RECORDING_MAX_BYTES": ("hms_recording_max_bytes", _number(int, minimum=1024, maximum=1024**4)),
    # session tokens and the client address (issue 12)
    "HUB_JWT_AUDIENCE": ("jwt_audience", _claim_text),
    "HUB_JWT_ISSUER": ("jwt_issuer", _claim_text),
    "HUB_JWT_MAX_TTL_S": ("jwt_max_ttl_s", _number(float, minimum=1, maximum=30 * 86_400)),
    "HUB_JWKS_URL": ("jwks_url", _url),
    "HUB_TRUSTED_PROXIES": ("trusted_proxies", _proxies),
    # signed events to the host app
    "HUB_EVENTS_URL": ("events_urls", _urls),
    "HUB_EVENTS_SECRET": ("events_secret", _webhook_secret),
    "HUB_EVENTS_TIMEOUT_S": ("events_timeout_s", _number(float, minimum=0.1, maximum=120)),
    "HUB_EVENTS_BACKOFF_BASE_S": ("events_backoff_base_s", _number(float, minimum=0.01, maximum=3600)),
    "HUB_EVENTS_RETRY_FOR_S": ("events_retry_for_s", _number(float, minimum=1, maximum=7 * 86_400)),
    "HUB_EVENTS_REPORT_CHECK_S": ("events_report_check_s", _number(float, minimum=0.1, maximum=3600)),
    # LTI Proctoring Services: the tool's signing key (generated when unset), where platforms reach us
    "LTI_PRIVATE_KEY": ("lti_private_key", _pem(private=True)),
    "LTI_KEY_ID": ("lti_key_id", _token_like),
    "LTI_PREVIOUS_PUBLIC_KEY": ("lti_previous_public_key", _pem(private=False)),
    "LTI_BASE_URL": ("lti_base_url", _url),
    "LTI_SESSION_TTL_S": ("lti_session_ttl_s", _number(float, minimum=1, maximum=86_400)),
    "LTI_ACS_FLAG_GAP_S": ("lti_acs_flag_gap_s", _number(float, minimum=0.5, maximum=86_400)),
    "LTI_ACS_RETRY_S": ("lti_acs_retry_s", _number(float, minimum=0.5, maximum=3600)),
}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build `Settings` from the environment; raise `ConfigError` naming the first bad setting."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for name, (attr, read) in _READERS.items():
        raw = env.get(name)
        if raw is None or raw == "":
            continue
        values[attr] = read(name, raw)
    if "hub_secret" not in values:
        if "redis_url" in values:
            raise ConfigError(
                "Config 'HUB_SECRET' is required when REDIS_URL is set (all nodes must share it)."
            )
        values["hub_secret"] = secrets.token_urlsafe(32)
        values["embedded_secret"] = True
    _simulator_mode(values)
    _hms_defaults(values)
    if values.get("events_urls") and "events_secret" not in values:
        raise ConfigError("Config 'HUB_EVENTS_SECRET' is required when HUB_EVENTS_URL is set.")
    own = values.get("hms_room_prefix", Settings.hms_room_prefix)
    relays = cast(tuple[tuple[str, str], ...], values.get("hms_webhook_relay", ()))
    if any(prefix == own for prefix, _url in relays):
        raise ConfigError(f"Config 'HMS_WEBHOOK_RELAY' must not relay this hub's own prefix {own!r}.")
    keep, budget = (
        values.get("signal_keep", Settings.signal_keep),
        values.get("signal_budget", Settings.signal_budget),
    )
    if cast(int, keep) >= cast(int, budget):
        raise ConfigError(f"Config 'RECORDING_SIGNAL_KEEP' must be below RECORDING_SIGNAL_BUDGET ({budget}).")
    if "lti_key_id" in values and "lti_private_key" not in values:
        raise ConfigError("Config 'LTI_KEY_ID' names the key of LTI_PRIVATE_KEY, which is not set.")
    return Settings(**values)  # type: ignore[arg-type]


def _simulator_mode(values: dict[str, object]) -> None:
    """The in-process simulator is one node's private 100ms: several nodes (REDIS_URL) need one shared."""
    if "hms_api_base" in values and "hms_simulator" in values:
        raise ConfigError("Config 'HMS_SIMULATOR' must not be set with HMS_API_BASE: choose one 100ms.")
    if "redis_url" in values and "hms_api_base" not in values and "hms_simulator" not in values:
        raise ConfigError(
            "Config 'HMS_API_BASE' is required when REDIS_URL is set: point every node at real 100ms or at "
            "one `proctorhub simulate-100ms` (HMS_SIMULATOR=embedded runs one simulator per node, for "
            "development only)."
        )


LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str | None) -> bool:
    """Does binding `host` keep the hub on this machine? None (unknown, e.g. a uvicorn factory): no."""
    if host is None:
        return False
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings, host: str | None) -> None:
    """Refuse what is for one developer's machine on an address others can reach: the random secret
    (and its printed 12-hour links) and the 100ms simulator (its /_sim controls have no auth)."""
    if is_loopback(host):
        return
    where = f"--host {host}" if host is not None else "a bind address not known to be loopback"
    if settings.embedded_secret:
        raise ConfigError(
            f"Config 'HUB_SECRET' is required on {where}: without it the hub makes a random secret and "
            "prints admin links, which is for a loopback bind only."
        )
    if settings.hms_simulator is not None:
        raise ConfigError(
            f"Config 'HMS_SIMULATOR=embedded' is for development on a loopback bind only, not {where}: "
            "set HMS_API_BASE to real 100ms (or to a `proctorhub simulate-100ms`)."
        )
    if settings.hms_simulated:
        raise ConfigError(
            f"Config 'HMS_API_BASE' is required on {where}: the built-in 100ms simulator runs on a "
            "loopback bind only."
        )


def _hms_defaults(values: dict[str, object]) -> None:
    """Real 100ms needs its keys; the in-process simulator gets random ones shared with it."""
    if "hms_api_base" in values:
        for env, attr in (("HMS_ACCESS_KEY", "hms_access_key"), ("HMS_SECRET", "hms_secret")):
            if attr not in values:
                raise ConfigError(f"Config '{env}' is required when HMS_API_BASE is set.")
        return
    values.setdefault("hms_access_key", secrets.token_hex(12))
    values.setdefault("hms_secret", secrets.token_urlsafe(32))
    values.setdefault("hms_webhook_secret", secrets.token_urlsafe(24))


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
