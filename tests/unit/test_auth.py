"""Session JWTs (docs/protocol.md, "Host-app session tokens"): what `verify_session` accepts and refuses."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from typing import Any

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.auth import InvalidSession, Session, TokenRules, mint_session, verify_session
from server.config import ConfigError, load_settings

SECRET = "auth-test-secret-" + "0123456789abcdef" * 3  # 64 bytes: long enough for HS512 too
OTHER_SECRET = "other-secret-" + "0123456789abcdef" * 3
NOW = 1_764_000_000.0


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(**changes: Any) -> dict[str, Any]:
    """Valid candidate claims; a change to `...` (Ellipsis) removes the claim."""
    base: dict[str, Any] = {
        "sub": "user-1",
        "event": "exam-1",
        "role": "candidate",
        "iat": int(NOW) - 10,
        "exp": int(NOW) + 600,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def sign(payload: dict[str, Any], *, secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, secret, algorithm=algorithm)


def sign_raw(payload_json: str, *, header: dict[str, Any] | None = None, secret: str = SECRET) -> str:
    """An HS256 token over an exact payload text (for values `jwt.encode` would not write)."""
    head = b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(payload_json.encode())
    mac = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def unsigned(payload: dict[str, Any], alg: str = "none") -> str:
    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    return f"{head}.{b64(json.dumps(payload).encode())}."


def refused(token: object, *, now: float = NOW, leeway: float = 0.0) -> str:
    with pytest.raises(InvalidSession) as info:
        verify_session(token, SECRET, now=now, leeway=leeway)
    return str(info.value)


# ---------------------------------------------------------------- accepted


def test_good_token_maps_claims_to_session() -> None:
    token = sign(claims(name="Ada Lovelace", role="proctor"))
    session = verify_session(token, SECRET, now=NOW)
    assert session == Session(
        user_id="user-1",
        event_id="exam-1",
        role="proctor",
        exp=NOW + 600,
        iat=NOW - 10,
        name="Ada Lovelace",
    )


def test_name_is_optional() -> None:
    session = verify_session(sign(claims()), SECRET, now=NOW)
    assert session.name is None
    assert session.role == "candidate"


@pytest.mark.parametrize("role", ["candidate", "proctor", "admin"])
def test_every_role_is_accepted(role: str) -> None:
    assert verify_session(sign(claims(role=role)), SECRET, now=NOW).role == role


def test_float_timestamps_are_accepted() -> None:
    session = verify_session(sign(claims(exp=NOW + 0.5, iat=NOW - 0.5)), SECRET, now=NOW)
    assert (session.exp, session.iat) == (NOW + 0.5, NOW - 0.5)


def test_nbf_in_the_past_is_accepted() -> None:
    session = verify_session(sign(claims(nbf=int(NOW) - 1)), SECRET, now=NOW)
    assert session.user_id == "user-1"


def test_ids_of_128_characters_are_accepted() -> None:
    session = verify_session(sign(claims(sub="u" * 128, event="e" * 128)), SECRET, now=NOW)
    assert (len(session.user_id), len(session.event_id)) == (128, 128)


def test_admin_may_hold_every_event() -> None:
    session = verify_session(sign(claims(role="admin", event="*")), SECRET, now=NOW)
    assert session.event_id == "*"
    assert session.sees_event("exam-1") and session.sees_event("exam-2")


def test_other_roles_see_only_their_event() -> None:
    session = verify_session(sign(claims(role="proctor")), SECRET, now=NOW)
    assert session.sees_event("exam-1")
    assert not session.sees_event("exam-2")
    assert not session.sees_event("*")


def test_leeway_accepts_a_token_just_expired() -> None:
    token = sign(claims(exp=int(NOW) - 5))
    assert verify_session(token, SECRET, now=NOW, leeway=10).exp == NOW - 5
    refused(token, leeway=1)


def test_expiry_is_exclusive() -> None:
    assert verify_session(sign(claims(exp=NOW + 1)), SECRET, now=NOW).exp == NOW + 1
    refused(sign(claims(exp=NOW)))


# ---------------------------------------------------------------- refused


@pytest.mark.parametrize("alg", ["none", "None", "NONE", ""])
def test_unsigned_token_is_refused(alg: str) -> None:
    assert "algorithm" in refused(unsigned(claims(), alg))


def test_alg_none_with_a_signature_is_refused() -> None:
    good = sign(claims())
    head = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    refused(".".join([head, *good.split(".")[1:]]))


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_algorithm_is_refused(algorithm: str) -> None:
    assert "algorithm" in refused(sign(claims(), algorithm=algorithm))


def test_wrong_key_is_refused() -> None:
    assert refused(sign(claims(), secret=OTHER_SECRET)) == "bad signature"


def test_tampered_payload_is_refused() -> None:
    head, _, sig = sign(claims()).split(".")
    forged = b64(json.dumps(claims(role="admin", event="*")).encode())
    assert refused(f"{head}.{forged}.{sig}") == "bad signature"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (claims(exp=int(NOW) - 1), "expired"),
        (claims(exp=...), "'exp' is missing"),
        (claims(iat=...), "'iat' is missing"),
        (claims(exp=str(int(NOW) + 600)), "'exp' must be a number"),
        (claims(exp=True), "'exp' must be a number"),
        (claims(iat="yesterday"), "'iat' must be a number"),
        (claims(nbf=int(NOW) + 60), "nbf"),
        (claims(nbf="soon"), "'nbf' must be a number"),
        (claims(sub=...), "sub"),
        (claims(sub=""), "sub"),
        (claims(sub="u" * 129), "sub"),
        (claims(sub=42), "'sub'"),
        (claims(sub=["user-1"]), "'sub'"),
        (claims(event=...), "'event'"),
        (claims(event=""), "'event'"),
        (claims(event="e" * 129), "'event'"),
        (claims(event=7), "'event'"),
        (claims(role="superuser"), "role"),
        (claims(role="Admin"), "role"),
        (claims(role=...), "role"),
        (claims(role=None), "role"),
        (claims(event="*", role="candidate"), "admin"),
        (claims(event="*", role="proctor"), "admin"),
        (claims(name=5), "'name'"),
        (claims(name="n" * 201), "'name'"),
    ],
    ids=[
        "expired",
        "exp-missing",
        "iat-missing",
        "exp-string",
        "exp-bool",
        "iat-string",
        "nbf-future",
        "nbf-string",
        "sub-missing",
        "sub-empty",
        "sub-129",
        "sub-int",
        "sub-list",
        "event-missing",
        "event-empty",
        "event-129",
        "event-int",
        "role-unknown",
        "role-case",
        "role-missing",
        "role-null",
        "candidate-all-events",
        "proctor-all-events",
        "name-int",
        "name-too-long",
    ],
)
def test_bad_claims_are_refused(payload: dict[str, Any], reason: str) -> None:
    assert reason in refused(sign(payload))


def test_nbf_within_leeway_is_accepted() -> None:
    token = sign(claims(nbf=int(NOW) + 5))
    refused(token)
    assert verify_session(token, SECRET, now=NOW, leeway=10).user_id == "user-1"


@pytest.mark.parametrize(
    "token",
    [None, 123, 1.5, b"abc.def.ghi", ["a", "b"], "", "not-a-jwt", "a.b", "a.b.c", "...", "e30.e30.", "\x00"],
    ids=repr,
)
def test_garbage_and_non_strings_are_refused(token: object) -> None:
    refused(token)


def test_payload_that_is_not_an_object_is_refused() -> None:
    refused(sign_raw("[1, 2, 3]"))


@pytest.mark.parametrize("payload_field", ['"exp": NaN', '"exp": Infinity', '"nbf": NaN', '"iat": NaN'])
def test_non_finite_timestamps_are_refused(payload_field: str) -> None:
    base = json.dumps(claims(nbf=int(NOW) - 1))[:-1]
    refused(sign_raw(f"{base}, {payload_field}}}"))


def test_huge_integer_timestamp_is_refused() -> None:
    refused(sign(claims(exp=10**400)))


def test_token_with_a_lone_surrogate_is_refused() -> None:
    refused("\ud800" + sign(claims()))


def accepted_secret(secret: str) -> bool:
    try:
        return load_settings({"HUB_SECRET": secret}).hub_secret == secret
    except ConfigError:
        return False


def test_shortest_secret_config_accepts_verifies_without_warnings() -> None:
    short = next(s for s in ("s" * n for n in range(1, 65)) if accepted_secret(s))
    token = sign_raw(json.dumps(claims()), secret=short)
    assert verify_session(token, short, now=NOW).user_id == "user-1"


# ---------------------------------------------------------------- mint


@pytest.mark.parametrize("name", [None, "Grace Hopper"])
@pytest.mark.parametrize("role", ["candidate", "proctor", "admin"])
def test_mint_session_round_trips(role: str, name: str | None) -> None:
    token = mint_session(SECRET, user_id="u-7", event_id="ev-3", role=role, now=NOW, ttl_s=90, name=name)  # type: ignore[arg-type]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    session = verify_session(token, SECRET, now=NOW + 89)
    assert session == Session(user_id="u-7", event_id="ev-3", role=role, exp=NOW + 90, iat=NOW, name=name)  # type: ignore[arg-type]
    refused(token, now=NOW + 90)


def test_minted_token_needs_the_same_secret() -> None:
    token = mint_session(OTHER_SECRET, user_id="u", event_id="e", role="admin", now=NOW)
    assert refused(token) == "bad signature"


# ---------------------------------------------------------------- fuzz

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_segment = st.one_of(
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=", max_size=40),
    st.binary(max_size=40).map(b64),
    _json.map(lambda v: b64(json.dumps(v).encode())),
    st.dictionaries(st.sampled_from(["alg", "typ", "kid", "crit"]), _json, max_size=3).map(
        lambda h: b64(json.dumps({"alg": "HS256", **h}).encode())
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.lists(_segment, min_size=1, max_size=4).map(".".join)))
def test_random_garbage_tokens_only_raise_invalid_session(token: str) -> None:
    with pytest.raises(InvalidSession):
        verify_session(token, SECRET, now=NOW)


_claim_values = st.one_of(
    _json,
    st.sampled_from(["candidate", "proctor", "admin", "*", "u", ""]),
    st.floats(min_value=NOW - 100, max_value=NOW + 100),
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["sub", "event", "role", "exp", "iat", "nbf", "name", "aud", "jti", "iss"]),
        _claim_values,
        max_size=9,
    )
)
def test_signed_random_claims_give_a_session_or_invalid_session(payload: dict[str, Any]) -> None:
    try:
        session = verify_session(sign_raw(json.dumps(payload)), SECRET, now=NOW)
    except InvalidSession:
        return
    assert session.role in ("candidate", "proctor", "admin")
    assert session.exp > NOW
    assert session.user_id == payload["sub"] and session.event_id == payload["event"]


@pytest.mark.parametrize("payload_json", ["not json", "[1, 2]", '"text"'])
def test_library_errors_are_not_echoed(payload_json: str) -> None:
    """What PyJWT says about a broken token goes to the log; the client gets one fixed reason."""
    assert refused(sign_raw(payload_json)) == "token is malformed"


RULES = TokenRules(audience="hub", issuer="host", max_ttl_s=3600)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"aud": "other"}, "'aud'"),
        ({"aud": ["other", "another"]}, "'aud'"),
        ({"aud": ...}, "'aud'"),
        ({"iss": "someone"}, "'iss'"),
        ({"iss": ...}, "'iss'"),
        ({"iat": int(NOW) - 10, "exp": int(NOW) + 3600}, "longer than 3600s"),
        ({"iat": int(NOW) + 7200, "exp": int(NOW) + 7300}, "longer than 3600s"),
    ],
)
def test_rules_refuse(changes: dict[str, Any], reason: str) -> None:
    token = sign(claims(**{"aud": "hub", "iss": "host", **changes}))
    with pytest.raises(InvalidSession, match=reason):
        verify_session(token, SECRET, now=NOW, rules=RULES)


def test_rules_accept_and_mint() -> None:
    assert verify_session(sign(claims(aud=["x", "hub"], iss="host")), SECRET, now=NOW, rules=RULES)
    minted = mint_session(SECRET, user_id="u", event_id="e", role="admin", now=NOW, ttl_s=3600, rules=RULES)
    assert verify_session(minted, SECRET, now=NOW, rules=RULES).user_id == "u"
    # without rules, aud and iss are neither needed nor checked, and the default ceiling is a day
    assert verify_session(sign(claims(aud="anything")), SECRET, now=NOW)
    with pytest.raises(InvalidSession, match="longer than 86400s"):
        verify_session(sign(claims(exp=int(NOW) + 2 * 86_400)), SECRET, now=NOW)


_UNPADDED_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


def _pyjwt_session(token: str) -> Session | None:
    """The reference: PyJWT's HS256 check, then the same claim rules (None: refused).

    One rule comes first: a compact JWS is three parts of base64url without padding (RFC 7515,
    sections 2 and 7.1). PyJWT decodes more (a signature with `=` appended, or `+` for `-`) and
    the hub refuses those on purpose: one token, one spelling."""
    if not all(_UNPADDED_BASE64URL.fullmatch(part) for part in token.split(".")):
        return None
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != "HS256":
            return None
        payload = jwt.decode(
            token,
            SECRET,
            algorithms=["HS256"],
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
    except jwt.PyJWTError:
        return None
    try:
        return verify_session(sign(payload), SECRET, now=NOW)
    except InvalidSession:
        return None


def _mutate(token: str, data: st.DataObject) -> str:
    edits = data.draw(
        st.lists(
            st.tuples(st.sampled_from("sdi"), st.integers(0, 400), st.sampled_from("AQw-_.=+/ \x00é")),
            max_size=3,
        )
    )
    for op, at, char in edits:
        at %= len(token) + 1
        if op == "s" and at < len(token):
            token = token[:at] + char + token[at + 1 :]
        elif op == "d":
            token = token[:at] + token[at + 1 :]
        elif op == "i":
            token = token[:at] + char + token[at:]
    return token


def test_a_token_spelled_otherwise_than_unpadded_base64url_is_refused() -> None:
    token = sign(claims())
    head, body, signature = token.split(".")
    respelled = [
        f"{token}=",  # padding PyJWT would strip
        f"{head}.{body}.{signature.replace('-', '+').replace('_', '/')}",
        f"{head}=.{body}.{signature}",
    ]
    assert verify_session(token, SECRET, now=NOW).user_id == "user-1"
    for other in respelled:
        if other == token:
            continue
        with pytest.raises(InvalidSession):
            verify_session(other, SECRET, now=NOW)


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_hs256_verdicts_agree_with_pyjwt_on_altered_tokens(data: st.DataObject) -> None:
    """The hub checks HS256 itself (server/auth.py); on valid tokens and on tokens altered at random,
    it accepts exactly what PyJWT accepts, with the same session."""
    role = data.draw(st.sampled_from(["candidate", "proctor", "admin"]))
    token = _mutate(sign(claims(role=role, name=data.draw(st.none() | st.text(max_size=5)))), data)
    try:
        ours: Session | None = verify_session(token, SECRET, now=NOW)
    except InvalidSession:
        ours = None
    assert ours == _pyjwt_session(token)
