"""Which keys of a host's JWKS document the hub will check session tokens with."""

from __future__ import annotations

from typing import Any

import pytest

from server.jwks import parse_jwks
from tests.jwks_support import SigningKey


def test_signing_keys_by_kid() -> None:
    rsa, ec = SigningKey.rsa("r1"), SigningKey.ec("e1")
    keys = parse_jwks({"keys": [rsa.jwk(), ec.jwk()]})
    assert {kid: key.algorithm_name for kid, key in keys.items()} == {"r1": "RS256", "e1": "ES256"}


@pytest.mark.parametrize(
    "change",
    [{"kid": None}, {"use": "enc"}, {"alg": "RS512"}, {"kty": "oct", "k": "c2VjcmV0"}, {"n": "!!"}],
    ids=["no-kid", "encryption", "other-alg", "symmetric", "broken"],
)
def test_unusable_keys_are_left_out(change: dict[str, Any]) -> None:
    entry = {**SigningKey.rsa("r1").jwk(), **change}
    good = SigningKey.ec("e1").jwk()
    assert list(parse_jwks({"keys": [entry, good]})) == ["e1"]


@pytest.mark.parametrize("document", [[], {"keys": "x"}, {"no": "keys"}, "text"])
def test_a_document_that_is_not_a_jwks_is_refused(document: object) -> None:
    with pytest.raises(ValueError, match="'keys' list"):
        parse_jwks(document)
