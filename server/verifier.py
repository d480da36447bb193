"""Who a session token proves, for the WebSocket and the HTTP API alike (one object, held by the app).

HS256 tokens are checked with HUB_SECRET. With HUB_JWKS_URL set, RS256/ES256 tokens from the host
application are checked with the public key its JWKS names by `kid`:

    keys          fetched at start, then every JWKS_REFRESH_S (a failed fetch keeps the old keys)
    unknown kid   the JWKS is fetched again at once (the host rotated its key), but at most once per
                  UNKNOWN_KID_REFETCH_S: tokens with made-up kids cannot make the hub hammer the host
    no blocking   httpx, asynchronously; a verification waits only for a fetch its own kid needs

The cache is server/jwks.py's, shared with the LTI tool (which lets an LMS's keys expire instead).

The checks of the claims themselves are the pure ones of server/auth.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt

from server.auth import ASYMMETRIC, InvalidSession, Session, token_header, verify_session, verify_signed
from server.background import Background
from server.config import Settings
from server.jwks import KeySet, KeySetUnavailable, UnknownKey

log = logging.getLogger("proctorhub.verifier")

JWKS_REFRESH_S = 600.0
UNKNOWN_KID_REFETCH_S = 30.0
JWKS_TIMEOUT_S = 5.0


def host_keys(url: str, http: httpx.AsyncClient, clock: Callable[[], float] = time.monotonic) -> KeySet:
    """The host's keys: never stale (refreshed every JWKS_REFRESH_S; a failed fetch keeps the old ones,
    so the host being down logs out nobody), an unknown kid fetched again at most every 30 s."""
    return KeySet(url, http, max_age_s=None, refetch_s=UNKNOWN_KID_REFETCH_S, clock=clock)


class SessionVerifier:
    """`await verify(token)`: the session a host-app token proves, or `InvalidSession` saying why."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = settings.hub_secret
        self._rules = settings.token_rules
        self._clock = clock
        self._http = httpx.AsyncClient(timeout=JWKS_TIMEOUT_S, follow_redirects=False)
        self._jwks = host_keys(settings.jwks_url, self._http) if settings.jwks_url else None
        self._background = Background(log)

    async def start(self) -> None:
        if self._jwks is not None:
            self._background.every("JWKS refresh", JWKS_REFRESH_S, self._jwks.refresh, first_delay_s=0)

    async def stop(self) -> None:
        await self._background.stop()
        await self._http.aclose()

    async def verify(self, token: object) -> Session:
        header = token_header(token)
        alg = header.get("alg")
        if alg == "HS256":
            return verify_session(token, self._secret, now=self._clock(), rules=self._rules)
        if alg not in ASYMMETRIC or self._jwks is None:
            raise InvalidSession(f"algorithm {alg!r} is not accepted")
        key = await self._key(header)
        if key.algorithm_name != alg:
            raise InvalidSession(f"key {header['kid']!r} is not a {alg} key")
        return verify_signed(str(token), key.key, alg, now=self._clock(), rules=self._rules)

    async def _key(self, header: dict[str, Any]) -> jwt.PyJWK:
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidSession("an RS256/ES256 token must name its key ('kid')")
        assert self._jwks is not None
        try:
            return await self._jwks.key(kid)
        except UnknownKey:
            raise InvalidSession(f"key {kid!r} is not in the host's JWKS") from None
        except KeySetUnavailable:
            raise InvalidSession(f"key {kid!r} is not in the host's JWKS (it could not be fetched)") from None
