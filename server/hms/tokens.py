"""100ms app and management tokens (contract §1): HS256 JWTs signed with the app secret.

Pure except for the clock and the random `jti`, both of which the caller may pass in.
`iat`/`nbf` are back-dated by `SKEW_S`, as 100ms's own Node SDK does, so a node whose clock
runs slightly ahead of 100ms's does not mint tokens that are "not valid yet"; `exp` is
counted from now, so the lifetime a client can use is the full `ttl_s`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

SKEW_S = 10
ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class AppToken:
    token: str
    jti: str
    room_id: str
    user_id: str
    role: str
    iat: int
    exp: int


def mint_app_token(
    *,
    access_key: str,
    secret: str,
    room_id: str,
    user_id: str,
    role: str,
    ttl_s: float,
    now: float,
    jti: str | None = None,
) -> AppToken:
    """A token a client joins one room with, as one user in one role."""
    jti = jti or str(uuid.uuid4())
    iat = int(now) - SKEW_S
    exp = int(now + ttl_s)
    claims = {
        "access_key": access_key,
        "room_id": room_id,
        "user_id": user_id,
        "role": role,
        "type": "app",
        "version": 2,
        "jti": jti,
        "iat": iat,
        "nbf": iat,
        "exp": exp,
    }
    return AppToken(jwt.encode(claims, secret, algorithm=ALGORITHM), jti, room_id, user_id, role, iat, exp)


def mint_management_token(*, access_key: str, secret: str, ttl_s: float, now: float) -> tuple[str, int]:
    """A token for the REST API; returns it with its `exp`."""
    iat = int(now) - SKEW_S
    exp = int(now + ttl_s)
    claims = {
        "access_key": access_key,
        "type": "management",
        "version": 2,
        "jti": str(uuid.uuid4()),
        "iat": iat,
        "nbf": iat,
        "exp": exp,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM), exp


class ManagementTokens:
    """A cached management token, minted again when it is within `renew_before_s` of `exp` or refused."""

    def __init__(
        self,
        access_key: str,
        secret: str,
        *,
        ttl_s: float = 24 * 3600,
        renew_before_s: float = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._access_key = access_key
        self._secret = secret
        self._ttl_s = ttl_s
        self._renew_before_s = renew_before_s
        self._clock = clock
        self._token: str | None = None
        self._exp = 0

    def get(self) -> str:
        now = self._clock()
        if self._token is None or now >= self._exp - self._renew_before_s:
            self._token, self._exp = mint_management_token(
                access_key=self._access_key, secret=self._secret, ttl_s=self._ttl_s, now=now
            )
        return self._token

    def invalidate(self) -> None:
        """After a 401/403: the next `get` mints a new one."""
        self._token = None


def decode_unverified(token: str) -> dict[str, Any]:
    """The claims of a token without checking it (for logs and tests only)."""
    return jwt.decode(token, options={"verify_signature": False})
