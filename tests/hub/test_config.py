"""Settings from the environment: defaults, and one loud `ConfigError` naming each bad setting."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from server import config
from server.config import ConfigError, Settings, load_settings
from tests.servers import ROOT, free_port

SECRET = "config-test-secret-0123456789abcdef"

NUMERIC = sorted(
    name for name, (_, read) in config._READERS.items() if read.__qualname__.startswith("_number.")
)


def refused(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    return str(info.value)


def test_numeric_settings_are_found() -> None:
    assert len(NUMERIC) >= 12
    assert {"HUB_PRESENCE_GRACE_S", "HUB_MAX_MESSAGE_BYTES", "HUB_RATE_BURST", "HUB_SEND_QUEUE"} <= set(
        NUMERIC
    )


def test_defaults_with_an_embedded_random_secret() -> None:
    settings = load_settings({})
    assert settings.embedded_secret
    assert len(settings.hub_secret) >= 32
    generated = ("hub_secret", "node_id", "hms_access_key", "hms_secret", "hms_webhook_secret")
    assert settings == Settings(embedded_secret=True, **{k: getattr(settings, k) for k in generated})
    assert settings.hms_simulated and len(settings.hms_secret) >= 32 and settings.hms_access_key
    assert settings.store_kind == "memory"
    assert settings.redis_url is None and settings.api_key is None
    assert settings.allowed_origins == ()
    assert settings.node_id and " " not in settings.node_id
    assert load_settings({}).hub_secret != settings.hub_secret


def test_real_100ms_needs_its_keys() -> None:
    assert "'HMS_ACCESS_KEY'" in refused({"HMS_API_BASE": "https://api.100ms.live/v2"})
    assert "'HMS_SECRET'" in refused({"HMS_API_BASE": "https://api.100ms.live/v2", "HMS_ACCESS_KEY": "k1"})
    assert "'HMS_API_BASE'" in refused({"HMS_API_BASE": "ftp://x"})
    assert "'HMS_REGION'" in refused({"HMS_REGION": "mars"})
    real = load_settings(
        {"HMS_API_BASE": "https://api.100ms.live/v2/", "HMS_ACCESS_KEY": "k1", "HMS_SECRET": "s" * 40}
    )
    assert real.hms_api_base == "https://api.100ms.live/v2" and not real.hms_simulated


def test_empty_values_count_as_unset() -> None:
    assert load_settings({"HUB_SECRET": "", "HUB_PRESENCE_GRACE_S": "", "LOG_LEVEL": ""}).embedded_secret


def test_values_are_parsed() -> None:
    settings = load_settings(
        {
            "HUB_SECRET": SECRET,
            "HUB_API_KEY": "api-key-0123456789",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "HMS_SIMULATOR": "embedded",
            "LOG_LEVEL": " debug ",
            "HUB_PRESENCE_GRACE_S": "2.5",
            "HUB_MAX_MESSAGE_BYTES": "2048",
            "HUB_RATE_BURST": "7",
            "HUB_NODE_ID": "node-a",
        }
    )
    assert (settings.hub_secret, settings.embedded_secret) == (SECRET, False)
    assert settings.api_key == "api-key-0123456789"
    assert settings.store_kind == "redis"
    assert settings.log_level == "DEBUG"
    assert settings.presence_grace_s == 2.5
    assert settings.max_message_bytes == 2048 and isinstance(settings.max_message_bytes, int)
    assert settings.rate_burst == 7
    assert settings.node_id == "node-a"


@pytest.mark.parametrize("name", NUMERIC)
@pytest.mark.parametrize("raw", ["abc", "-1", "99999999999999", "nan", "inf", "1,5"])
def test_bad_numeric_setting_names_itself(name: str, raw: str) -> None:
    message = refused({"HUB_SECRET": SECRET, name: raw})
    assert f"'{name}'" in message
    assert repr(raw) in message


@pytest.mark.parametrize("name", [n for n in NUMERIC if n.endswith("_S")])
def test_float_settings_take_fractions(name: str) -> None:
    attr = config._READERS[name][0]
    env = {name: "1.5"}
    assert getattr(load_settings(env), attr) == 1.5


@pytest.mark.parametrize("name", ["HUB_MAX_MESSAGE_BYTES", "HUB_RATE_BURST", "HUB_SEND_QUEUE"])
def test_integer_settings_refuse_fractions(name: str) -> None:
    assert "integer" in refused({name: "4096.5"})


def test_the_signal_budget_must_leave_room_to_fold() -> None:
    message = refused({"RECORDING_SIGNAL_BUDGET": "64", "RECORDING_SIGNAL_KEEP": "64"})
    assert "'RECORDING_SIGNAL_KEEP'" in message and "RECORDING_SIGNAL_BUDGET" in message
    settings = load_settings({"RECORDING_SIGNAL_BUDGET": "100", "RECORDING_SIGNAL_KEEP": "10"})
    assert (settings.signal_budget, settings.signal_keep) == (100, 10)


@pytest.mark.parametrize("raw", ["verbose", "TRACE", "10"])
def test_bad_log_level(raw: str) -> None:
    assert "'LOG_LEVEL'" in refused({"LOG_LEVEL": raw})


@pytest.mark.parametrize("url", ["redis://localhost:6379", "rediss://cache:6380/1", "unix:///tmp/redis.sock"])
def test_redis_url_schemes(url: str) -> None:
    env = {"HUB_SECRET": SECRET, "REDIS_URL": url, "HMS_SIMULATOR": "embedded"}
    assert load_settings(env).redis_url == url


@pytest.mark.parametrize("url", ["http://localhost:6379", "localhost:6379", "memcached://x", "REDIS://x"])
def test_redis_url_bad_scheme(url: str) -> None:
    assert "'REDIS_URL'" in refused({"HUB_SECRET": SECRET, "REDIS_URL": url})


def test_redis_url_without_hub_secret_is_refused() -> None:
    message = refused({"REDIS_URL": "redis://localhost:6379"})
    assert "'HUB_SECRET'" in message


@pytest.mark.parametrize("name", ["HUB_SECRET", "HUB_API_KEY"])
def test_secrets_too_short(name: str) -> None:
    assert f"'{name}'" in refused({name: "s" * 15})
    load_settings({name: "s" * 32})


@pytest.mark.parametrize("raw", ["has space", "n" * 65, "tab\there"])
def test_bad_node_id(raw: str) -> None:
    assert "'HUB_NODE_ID'" in refused({"HUB_NODE_ID": raw})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://exam.example.com", ("https://exam.example.com",)),
        (
            " https://a.example.com , http://localhost:3000,,",
            ("https://a.example.com", "http://localhost:3000"),
        ),
        (",", ()),
    ],
)
def test_allowed_origins_parsing(raw: str, expected: tuple[str, ...]) -> None:
    assert load_settings({"HUB_ALLOWED_ORIGINS": raw}).allowed_origins == expected


@pytest.mark.parametrize("raw", ["example.com", "https://ok.example.com,ftp://files.example.com", "*"])
def test_allowed_origins_must_be_http(raw: str) -> None:
    assert "'HUB_ALLOWED_ORIGINS'" in refused({"HUB_ALLOWED_ORIGINS": raw})


def test_pong_timeout_follows_the_heartbeat_unless_set() -> None:
    assert load_settings({"HUB_HEARTBEAT_S": "2"}).pong_timeout_s == 2
    assert load_settings({"HUB_HEARTBEAT_S": "2", "HUB_HEARTBEAT_TIMEOUT_S": "30"}).pong_timeout_s == 30


def test_load_settings_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_SECRET", SECRET)
    monkeypatch.setenv("HUB_RATE_PER_S", "3")
    settings = load_settings()
    assert (settings.hub_secret, settings.rate_per_s) == (SECRET, 3.0)


def test_bad_setting_stops_the_server_with_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if k not in config._READERS}
    env["HUB_PRESENCE_GRACE_S"] = "abc"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "server", "run", "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert time.monotonic() - started < 10
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "HUB_PRESENCE_GRACE_S" in lines[0]
    assert "Traceback" not in done.stderr


def test_webhook_allow_list_relays_and_workers() -> None:
    settings = load_settings(
        {
            "HMS_WEBHOOK_ALLOW_NETS": "34.100.213.146/32, 10.0.0.0/8,,2001:db8::/32",
            "HMS_WEBHOOK_RELAY": "staging=https://staging.example.com/webhooks/100ms, edge=http://10.0.0.5:8000/w",
            "HMS_WEBHOOK_WORKERS": "0",
        }
    )
    assert settings.hms_webhook_allow_nets == ("34.100.213.146/32", "10.0.0.0/8", "2001:db8::/32")
    assert settings.hms_webhook_relay == (
        ("staging", "https://staging.example.com/webhooks/100ms"),
        ("edge", "http://10.0.0.5:8000/w"),
    )
    assert settings.hms_webhook_workers == 0
    assert load_settings({}).hms_webhook_relay == () and load_settings({}).hms_webhook_allow_nets == ()
    for bad in ("10.0.0.0/33", "10.0.0.1/8", "example.com"):
        assert "'HMS_WEBHOOK_ALLOW_NETS'" in refused({"HMS_WEBHOOK_ALLOW_NETS": bad})
    for bad in ("staging", "staging=ftp://x", "a b=https://x", "s=https://a,s=https://b", "=https://x"):
        assert "'HMS_WEBHOOK_RELAY'" in refused({"HMS_WEBHOOK_RELAY": bad})
    own = refused({"HMS_ROOM_PREFIX": "prod", "HMS_WEBHOOK_RELAY": "prod=https://x"})
    assert "'HMS_WEBHOOK_RELAY'" in own and "'prod'" in own
    assert "'HMS_WEBHOOK_WORKERS'" in refused({"HMS_WEBHOOK_WORKERS": "-1"})


def test_session_token_and_proxy_settings() -> None:
    defaults = load_settings({})
    assert (defaults.jwt_audience, defaults.jwt_issuer, defaults.jwks_url) == (None, None, None)
    assert defaults.jwt_max_ttl_s == 86_400 and defaults.trusted_proxies == ()
    settings = load_settings(
        {
            "HUB_JWT_AUDIENCE": "proctorhub",
            "HUB_JWT_ISSUER": "https://exam.example",
            "HUB_JWT_MAX_TTL_S": "7200",
            "HUB_JWKS_URL": "https://exam.example/.well-known/jwks.json",
            "HUB_TRUSTED_PROXIES": "10.0.0.7, 172.16.0.0/12, ::1",
        }
    )
    assert settings.token_rules.audience == "proctorhub" and settings.token_rules.max_ttl_s == 7200
    assert settings.trusted_proxies == ("10.0.0.7/32", "172.16.0.0/12", "::1/128")
    assert "'HUB_TRUSTED_PROXIES'" in refused({"HUB_TRUSTED_PROXIES": "*"})
    assert "'HUB_TRUSTED_PROXIES'" in refused({"HUB_TRUSTED_PROXIES": "proxy.internal"})
    assert "'HUB_JWKS_URL'" in refused({"HUB_JWKS_URL": "ftp://exam.example/keys"})


GOOD_EVENTS_SECRET = "whsec_" + "A" * 43 + "="  # base64 of 32 bytes


def test_host_events_need_a_standard_webhooks_secret() -> None:
    assert refused({"HUB_EVENTS_URL": "https://exams.example/hooks"}) == (
        "Config 'HUB_EVENTS_SECRET' is required when HUB_EVENTS_URL is set."
    )
    assert "must start with whsec_" in refused({"HUB_EVENTS_SECRET": "A" * 44})
    assert "standard base64" in refused({"HUB_EVENTS_SECRET": "whsec_***"})
    assert "24 to 64 bytes, got 3" in refused({"HUB_EVENTS_SECRET": "whsec_YWJj"})
    for message in (refused({"HUB_EVENTS_SECRET": "whsec_YWJj"}), refused({"HUB_EVENTS_SECRET": "x"})):
        assert message.startswith("Config 'HUB_EVENTS_SECRET' ")
        assert "YWJj" not in message  # a secret is never echoed


def test_host_event_urls_are_listed_and_checked() -> None:
    settings = load_settings(
        {
            "HUB_EVENTS_URL": " https://a.example/hooks/ ,http://127.0.0.1:9000/h",
            "HUB_EVENTS_SECRET": GOOD_EVENTS_SECRET,
        }
    )
    assert settings.events_urls == ("https://a.example/hooks/", "http://127.0.0.1:9000/h")
    assert settings.events_secret == GOOD_EVENTS_SECRET
    assert load_settings({}).events_urls == ()
    for bad in ("ftp://a.example", "https://", "https://a.example/x y", "https://a/x,https://a/x"):
        message = refused({"HUB_EVENTS_URL": bad, "HUB_EVENTS_SECRET": GOOD_EVENTS_SECRET})
        assert message.startswith("Config 'HUB_EVENTS_URL' "), message
