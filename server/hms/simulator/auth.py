"""Token checks as 100ms makes them (contract §1, §6 "JWT checks").

Both kinds are HS256 JWTs signed with the app secret and carrying the app access key.
Checks in order: a JWT at all (else "malformed token"), the access key, the signature, `type`,
`version` 2, `nbf` / `exp` with `skew_s` of allowance, then the claims the kind needs.
Pure: the caller passes `now`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt

from server.hms.simulator.errors import TokenRejected

ALGORITHM = "HS256"

MALFORMED = "malformed token"
ACCESS_KEY = "invalid access key"
SIGNATURE = "invalid token signature"
ALGORITHM_REASON = "unsupported token algorithm"
EXPIRED = "token is expired"
NOT_YET_VALID = "token is not valid yet"
MISSING = "token not found"  # REST call without `Authorization: Bearer ...`


@dataclass(frozen=True, slots=True)
class AppClaims:
    room_id: str
    user_id: str
    role: str
    jti: str
    exp: int


def _check(
    token: str, *, access_key: str, secret: str, kind: str, now: float, skew_s: float, rest: bool
) -> dict[str, Any]:
    def reject(reason: str) -> TokenRejected:
        return TokenRejected(reason, rest=rest)

    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise reject(MALFORMED) from None
    if not isinstance(unverified, dict):
        raise reject(MALFORMED)
    if unverified.get("access_key") != access_key:
        raise reject(ACCESS_KEY)
    if header.get("alg") != ALGORITHM:
        raise reject(ALGORITHM_REASON)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False},
        )
    except jwt.InvalidSignatureError:
        raise reject(SIGNATURE) from None
    except jwt.PyJWTError:
        raise reject(MALFORMED) from None
    if claims.get("type") != kind:
        raise reject(f"invalid token type: expected {kind}, got {claims.get('type')}")
    if claims.get("version") != 2:
        raise reject(f"invalid token version: expected 2, got {claims.get('version')}")
    nbf, exp = claims.get("nbf", claims.get("iat")), claims.get("exp")
    for name, value in (("exp", exp), ("nbf", nbf)):
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise reject(f"missing or invalid claim: {name}")
    if exp <= now - skew_s:
        raise reject(EXPIRED)
    if nbf > now + skew_s:
        raise reject(NOT_YET_VALID)
    return claims


def verify_app_token(token: str, *, access_key: str, secret: str, now: float, skew_s: float) -> AppClaims:
    """An app token presented at join or reconnect; raises `TokenRejected` (401, reason as message)."""
    claims = _check(
        token, access_key=access_key, secret=secret, kind="app", now=now, skew_s=skew_s, rest=False
    )
    values = {}
    for name in ("room_id", "user_id", "role"):
        value = claims.get(name)
        if not isinstance(value, str) or not value:
            raise TokenRejected(f"missing or invalid claim: {name}")
        values[name] = value
    return AppClaims(**values, jti=str(claims.get("jti", "")), exp=int(claims["exp"]))


def verify_management_token(
    authorization: str | None, *, access_key: str, secret: str, now: float, skew_s: float
) -> dict[str, Any]:
    """The `Authorization` header of a REST call; raises `TokenRejected` (401 "Token validation error")."""
    if not authorization:
        raise TokenRejected(MISSING, rest=True)
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenRejected(MALFORMED, rest=True)
    return _check(
        token.strip(),
        access_key=access_key,
        secret=secret,
        kind="management",
        now=now,
        skew_s=skew_s,
        rest=True,
    )
