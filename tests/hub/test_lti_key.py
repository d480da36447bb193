"""The tool's key: the LTI settings, the key a hub publishes at /lti/jwks, and one generated key shared
by every node of a Redis cluster (and kept across restarts)."""

from __future__ import annotations

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from server.config import ConfigError, load_settings
from server.lti.toolkey import generate_pem, public_jwk
from tests.conftest import HubFactory, flush
from tests.servers import RedisServer


def public_pem(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    raw = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return raw.decode()


def refused(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    return str(info.value)


def test_the_lti_settings_are_checked() -> None:
    pem = generate_pem()
    assert "LTI_PRIVATE_KEY" in refused({"LTI_PRIVATE_KEY": "not a key"})
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    small_pem = small.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    assert "at least 2048 bits" in refused({"LTI_PRIVATE_KEY": small_pem})
    assert "LTI_PREVIOUS_PUBLIC_KEY" in refused({"LTI_PREVIOUS_PUBLIC_KEY": pem})  # a private key
    assert "LTI_KEY_ID" in refused({"LTI_KEY_ID": "k1"})
    assert "LTI_BASE_URL" in refused({"LTI_BASE_URL": "tool.example"})
    escaped = load_settings({"LTI_PRIVATE_KEY": pem.replace("\n", "\\n"), "LTI_KEY_ID": "k1"})
    assert escaped.lti_private_key == pem and escaped.lti_key_id == "k1"


def jwks(url: str) -> list[dict[str, str]]:
    keys: list[dict[str, str]] = httpx.get(f"{url}/lti/jwks").json()["keys"]
    return keys


def test_a_configured_key_is_published_with_the_previous_one(hub_factory: HubFactory) -> None:
    new, old = generate_pem(), generate_pem()
    hub = hub_factory(LTI_PRIVATE_KEY=new, LTI_KEY_ID="2026-12", LTI_PREVIOUS_PUBLIC_KEY=public_pem(old))
    keys = jwks(hub.http)
    old_public = serialization.load_pem_public_key(public_pem(old).encode())
    new_public = serialization.load_pem_public_key(public_pem(new).encode())
    assert isinstance(old_public, rsa.RSAPublicKey) and isinstance(new_public, rsa.RSAPublicKey)
    assert keys == [public_jwk(new_public, "2026-12"), public_jwk(old_public)]


async def test_nodes_on_redis_share_one_generated_key_across_restarts(
    hub_factory: HubFactory, redis_server: RedisServer
) -> None:
    await flush(redis_server.url)
    on_redis = {"REDIS_URL": redis_server.url, "HMS_SIMULATOR": "embedded"}
    first = hub_factory(**on_redis)
    second = hub_factory(**on_redis)
    published = jwks(first.http)
    assert len(published) == 1
    assert jwks(second.http) == published
    first.stop()
    assert jwks(hub_factory(**on_redis).http) == published


def test_the_embedded_hub_generates_its_own_key(hub_factory: HubFactory) -> None:
    one, two = hub_factory(), hub_factory()
    assert jwks(one.http)[0]["kid"] != jwks(two.http)[0]["kid"]
