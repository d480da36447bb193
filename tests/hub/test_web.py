"""The pages' server side: the CSP (pure), frame-ancestors and origin rules, routes, and the links that
`proctorhub run` prints (a real process)."""

from __future__ import annotations

import re

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.api.pages import PAGES, client_config, content_security_policy
from server.config import ConfigError, Settings, load_settings
from server.hubs.endpoint import origin_allowed
from tests.client import login
from tests.servers import start_hub

SIMULATED = Settings(hub_secret="x" * 32)
REAL = Settings(
    hub_secret="x" * 32, hms_api_base="https://api.100ms.live/v2", hms_access_key="k", hms_secret="s" * 32
)


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for part in policy.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


def test_the_policy_allows_no_inline_code_and_only_this_origin() -> None:
    policy = directives(content_security_policy(SIMULATED, "hub.example:8000"))
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'", "ws://hub.example:8000", "wss://hub.example:8000"]
    assert policy["media-src"] == ["'self'", "blob:"]
    assert policy["frame-ancestors"] == ["'self'"]
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    assert "unsafe" not in content_security_policy(REAL, "hub.example")


def test_real_100ms_and_s3_widen_only_what_they_need() -> None:
    policy = directives(content_security_policy(REAL, None))
    assert "https://*.100ms.live" in policy["connect-src"] and "wss://*.100ms.live" in policy["connect-src"]
    assert policy["worker-src"] == ["'self'", "blob:"]
    minio = Settings(hub_secret="x" * 32, s3_bucket="rec", s3_endpoint_url="http://minio.local:9000")
    assert directives(content_security_policy(minio, None))["media-src"] == [
        "'self'",
        "blob:",
        "http://minio.local:9000",
    ]
    # The candidate page PUTs backfill segments to presigned URLs of the bucket (E15).
    assert "http://minio.local:9000" in directives(content_security_policy(minio, None))["connect-src"]
    aws = Settings(hub_secret="x" * 32, s3_bucket="rec")
    assert "https://*.amazonaws.com" in directives(content_security_policy(aws, None))["media-src"]


@given(st.text(max_size=40))
def test_a_hostile_host_header_never_adds_a_source(host: str) -> None:
    policy = directives(content_security_policy(SIMULATED, host))
    assert len(policy) == 11
    assert all(v.startswith(("'self'", "ws://", "wss://")) for v in policy["connect-src"])
    assert len(policy["connect-src"]) in (1, 3)


def test_frame_ancestors_setting() -> None:
    settings = load_settings({"HUB_FRAME_ANCESTORS": "'self' https://exam.example, https://*.lms.example"})
    assert settings.frame_ancestors == ("'self'", "https://exam.example", "https://*.lms.example")
    assert "frame-ancestors 'self' https://exam.example https://*.lms.example" in content_security_policy(
        settings, None
    )
    assert load_settings({}).frame_ancestors == ("'self'",)
    for bad in ("https://x;script-src", "javascript:alert(1)", "'none' https://a", "exam.example"):
        with pytest.raises(ConfigError, match="'HUB_FRAME_ANCESTORS'"):
            load_settings({"HUB_FRAME_ANCESTORS": bad})


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        ("http://evil.example", "hub:80", (), True),  # no list: any origin
        ("http://evil.example", "hub:80", ("http://exam.example",), False),
        ("http://exam.example", "hub:80", ("http://exam.example",), True),
        (None, "hub:80", ("http://exam.example",), True),  # not a browser
        ("https://hub:80", "hub:80", ("http://exam.example",), True),  # the hub's own pages
        ("http://hub:81", "hub:80", ("http://exam.example",), False),
        ("http://evil.example", None, ("http://exam.example",), False),
    ],
)
def test_origin_rules(origin: str | None, host: str | None, allowed: tuple[str, ...], ok: bool) -> None:
    assert origin_allowed(origin, host, allowed) is ok


def test_client_config_names_the_media_plane() -> None:
    assert client_config(SIMULATED) == {
        "media": "simulator",
        "media_base": "/hms-sim/media",
        "backfill": {"segment_s": 30.0},
    }
    assert client_config(REAL)["media"] == "100ms"
    short = Settings(hub_secret="x" * 32, backfill_segment_s=2.0)
    assert client_config(short)["backfill"] == {"segment_s": 2.0}


async def test_run_prints_a_link_per_role_that_opens_its_page() -> None:
    """Embedded mode (no HUB_SECRET): the banner's links carry working session tokens in the fragment."""
    hub = start_hub({"LOG_LEVEL": "WARNING"})
    try:
        links = dict(re.findall(r"^\s+(candidate|proctor|admin|review):\s+(\S+)$", hub.log(), re.M))
        assert set(links) == set(PAGES)
        async with httpx.AsyncClient() as http:
            for role, link in links.items():
                assert link.startswith(f"{hub.http}/{role}#token=") and "?" not in link
                page = await http.get(link.partition("#")[0])
                assert (
                    page.status_code == 200 and "unsafe-inline" not in page.headers["content-security-policy"]
                )
            assert (await http.get(f"{hub.http}/client-config.json")).json()["media"] == "simulator"
            for served in ("/", "/lib/hub.js", "/pages/proctor.js", "/css/app.css", "/favicon.svg"):
                assert (await http.get(f"{hub.http}{served}")).status_code == 200, served
            for hidden in ("/package.json", "/package-lock.json", "/vendor.mjs", "/tests/hub.test.mjs"):
                assert (await http.get(f"{hub.http}{hidden}")).status_code == 404, hidden
        client, hello = await login(hub.ws, links["proctor"].partition("#token=")[2])
        assert (hello["data"]["role"], hello["data"]["event_id"]) == ("proctor", "demo")
        await client.close()
    finally:
        hub.stop()
    assert len(hub.log().splitlines()) < 20
