"""Host-app session JWTs: verify and mint (docs/protocol.md, "Host-app session tokens").

HS256 with the shared secret `HUB_SECRET`, or RS256/ES256 with a key the host publishes (its JWKS,
fetched by server/jwks.py). This module is pure: it checks a token against the keys and rules it is
given. Every refusal raises `InvalidSession` with a reason a client can act on; nothing else escapes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

import jwt
import orjson

log = logging.getLogger("proctorhub.auth")

Role = Literal["candidate", "proctor", "admin"]
ROLES: tuple[Role, ...] = ("candidate", "proctor", "admin")
ALL_EVENTS = "*"
_ALGORITHM = "HS256"
ASYMMETRIC = ("RS256", "ES256")
"""Algorithms accepted with a key from the host's JWKS (HUB_JWKS_URL); never with HUB_SECRET."""
_MAX_ID = 128
DEFAULT_MAX_TTL_S = 86_400.0


class InvalidSession(Exception):
    """The session token was refused; the message says why."""


@dataclass(frozen=True)
class TokenRules:
    """What a token must also say (HUB_JWT_AUDIENCE, HUB_JWT_ISSUER) and how long it may live at most
    (HUB_JWT_MAX_TTL_S): a stolen token with a far expiry, or one made for another service, is refused."""

    audience: str | None = None
    issuer: str | None = None
    max_ttl_s: float = DEFAULT_MAX_TTL_S


DEFAULT_RULES = TokenRules()


@dataclass(frozen=True)
class Session:
    user_id: str
    event_id: str
    role: Role
    exp: float
    iat: float
    name: str | None = None

    def sees_event(self, event_id: str) -> bool:
        return self.event_id == event_id or (self.role == "admin" and self.event_id == ALL_EVENTS)


def _identifier(claims: dict[str, Any], claim: str) -> str:
    value = claims.get(claim)
    if not isinstance(value, str) or not 1 <= len(value) <= _MAX_ID:
        raise InvalidSession(f"claim '{claim}' must be a string of 1-{_MAX_ID} characters")
    return value


_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def _b64url(part: str) -> bytes:
    """Strict base64url without padding: `urlsafe_b64decode` alone skips foreign characters."""
    if not _B64URL.fullmatch(part):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@dataclass(frozen=True)
class _Compact:
    """A compact JWS split once: its header, what is signed, the payload and signature parts."""

    header: dict[str, Any]
    signed: str
    payload: str
    signature: str


def _split(token: object) -> _Compact:
    if not isinstance(token, str) or not token or not token.isascii():
        raise InvalidSession("token must be a non-empty ASCII string")
    signed, dot, signature = token.rpartition(".")
    head, dot2, payload = signed.partition(".")
    if not dot or not dot2 or "." in payload:
        raise InvalidSession("token is not a JWT")
    try:
        header = orjson.loads(_b64url(head))
    except (ValueError, binascii.Error):
        raise InvalidSession("token is not a JWT") from None
    if not isinstance(header, dict):
        raise InvalidSession("token is not a JWT")
    return _Compact(header, signed, payload, signature)


def token_header(token: object) -> dict[str, Any]:
    """The unverified header of a token (its `alg` and `kid` choose the key), or `InvalidSession`."""
    return _split(token).header


def verify_session(
    token: object,
    secret: str,
    *,
    now: float,
    leeway: float = 0.0,
    rules: TokenRules = DEFAULT_RULES,
) -> Session:
    """Return the session an HS256 token proves, or raise `InvalidSession`.

    HS256 is checked here rather than by PyJWT: an HMAC and two base64 decodes, where PyJWT's
    general path (key-type checks on every call, the header parsed twice) was a tenth of a
    node's CPU in a join storm. Asymmetric keys still go through PyJWT (`verify_signed`)."""
    compact = _split(token)
    if compact.header.get("alg") != _ALGORITHM:
        raise InvalidSession(f"algorithm {compact.header.get('alg')!r} is not accepted")
    try:
        signature = _b64url(compact.signature)
        claims = orjson.loads(_b64url(compact.payload))
    except (ValueError, binascii.Error):
        raise InvalidSession("token is malformed") from None
    expected = hmac.new(secret.encode(), compact.signed.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        raise InvalidSession("bad signature")
    if not isinstance(claims, dict):
        raise InvalidSession("token is malformed")
    return _session_from_claims(claims, now=now, leeway=leeway, rules=rules)


def verify_signed(
    token: str,
    key: Any,
    algorithm: str,
    *,
    now: float,
    leeway: float = 0.0,
    rules: TokenRules = DEFAULT_RULES,
) -> Session:
    """Check the signature with `key` under exactly `algorithm`, then the claims and the rules."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            # the claims are checked below, with reasons of our own wording
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
                "verify_sub": False,
                "verify_jti": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise InvalidSession("bad signature") from None
    except jwt.PyJWTError as exc:  # a library's words are not a client's answer: they go to the log
        log.debug("session token refused by PyJWT: %r", exc)
        raise InvalidSession("token is malformed") from None
    return _session_from_claims(claims, now=now, leeway=leeway, rules=rules)


def _timestamp(claims: dict[str, Any], claim: str) -> float | None:
    value = claims.get(claim)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidSession(f"claim '{claim}' must be a number")
    try:
        stamp = float(value)
    except OverflowError:
        stamp = math.inf
    if not math.isfinite(stamp):
        raise InvalidSession(f"claim '{claim}' must be a finite number")
    return stamp


def _required_timestamp(claims: dict[str, Any], claim: str) -> float:
    value = _timestamp(claims, claim)
    if value is None:
        raise InvalidSession(f"claim '{claim}' is missing")
    return value


def _check_rules(claims: dict[str, Any], exp: float, iat: float, *, now: float, rules: TokenRules) -> None:
    if rules.issuer is not None and claims.get("iss") != rules.issuer:
        raise InvalidSession("claim 'iss' is not this hub's issuer")
    if rules.audience is not None:
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if rules.audience not in audiences:
            raise InvalidSession("claim 'aud' does not name this hub")
    if exp - iat > rules.max_ttl_s or exp - now > rules.max_ttl_s:
        raise InvalidSession(f"token lives longer than {rules.max_ttl_s:g}s")


def _session_from_claims(claims: dict[str, Any], *, now: float, leeway: float, rules: TokenRules) -> Session:
    user_id = _identifier(claims, "sub")
    event_id = _identifier(claims, "event")
    role = claims.get("role")
    if role not in ROLES:
        raise InvalidSession(f"role {role!r} is unknown")
    exp = _required_timestamp(claims, "exp")
    iat = _required_timestamp(claims, "iat")
    nbf = _timestamp(claims, "nbf")
    if exp <= now - leeway:
        raise InvalidSession("token has expired")
    if nbf is not None and nbf > now + leeway:
        raise InvalidSession("token is not valid yet (nbf)")
    _check_rules(claims, exp, iat, now=now, rules=rules)
    if event_id == ALL_EVENTS and role != "admin":
        raise InvalidSession("only an admin may hold event '*'")
    name = claims.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 200):
        raise InvalidSession("claim 'name' must be a string of at most 200 characters")
    return Session(user_id=user_id, event_id=event_id, role=role, exp=exp, iat=iat, name=name)


def mint_session(
    secret: str,
    *,
    user_id: str,
    event_id: str,
    role: Role,
    now: float,
    ttl_s: float = 3600,
    name: str | None = None,
    rules: TokenRules = DEFAULT_RULES,
) -> str:
    """Sign a session token as a host application would (with the `aud` and `iss` the rules want)."""
    claims: dict[str, Any] = {
        "sub": user_id,
        "event": event_id,
        "role": role,
        "iat": int(now),
        "exp": int(now + ttl_s),
    }
    if name is not None:
        claims["name"] = name
    if rules.audience is not None:
        claims["aud"] = rules.audience
    if rules.issuer is not None:
        claims["iss"] = rules.issuer
    return jwt.encode(claims, secret, algorithm=_ALGORITHM)
