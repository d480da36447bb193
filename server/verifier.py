"""Who a session token proves, for the WebSocket and the HTTP API alike (one object, held by the app).

HS256 tokens are checked with HUB_SECRET. With HUB_JWKS_URL set, RS256/ES256 tokens from the host
application are checked with the public key its JWKS names by `kid`:

    keys          fetched at start, then every JWKS_REFRESH_S (a failed fetch keeps the old keys)
    unknown kid   the JWKS is fetched again at once (the host rotated its key), but at most once per
                  UNKNOWN_KID_REFETCH_S: tokens with made-up kids cannot make the hub hammer the host
    no blocking   httpx, asynchronously; a verification waits only for a fetch its own kid needs

The checks of the claims themselves are the pure ones of server/auth.py.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt

from server.auth import ASYMMETRIC, InvalidSession, Session, token_header, verify_session, verify_signed
from server.background import Background, Outage
from server.config import Settings

log = logging.getLogger("proctorhub.verifier")

JWKS_REFRESH_S = 600.0
UNKNOWN_KID_REFETCH_S = 30.0
JWKS_TIMEOUT_S = 5.0
MAX_JWKS_BYTES = 256 * 1024


def parse_jwks(document: object) -> dict[str, jwt.PyJWK]:
    """The usable RS256/ES256 signing keys of a JWKS document by kid (keys without a kid, for another
    use or of another algorithm are left out: a token names its key by kid)."""
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError("a JWKS must be an object with a 'keys' list")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("use", "sig") != "sig":  # an encryption key never signs a session
            continue
        try:
            key = jwt.PyJWK(entry)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:  # one bad key never costs the others
            log.warning("JWKS: key %r left out: %s", entry.get("kid"), exc)
            continue
        if key.algorithm_name in ASYMMETRIC:
            keys[entry["kid"]] = key
    return keys


class JwksKeys:
    """The host's public keys, cached by kid; see the module docstring for when they are fetched."""

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        refetch_gap_s: float = UNKNOWN_KID_REFETCH_S,
    ) -> None:
        self._url = url
        self._client = client or httpx.AsyncClient(timeout=JWKS_TIMEOUT_S, follow_redirects=False)
        self._clock = clock
        self._refetch_gap_s = refetch_gap_s
        self._keys: dict[str, jwt.PyJWK] = {}
        self._refetched_at = -math.inf
        self._lock = asyncio.Lock()
        self._outage = Outage(log, f"fetching the JWKS at {url}")

    async def key(self, kid: str) -> jwt.PyJWK | None:
        """The key named `kid`, fetching the JWKS again if it is unknown (rate-limited)."""
        key = self._keys.get(kid)
        if key is not None:
            return key
        async with self._lock:
            if kid not in self._keys and self._clock() - self._refetched_at >= self._refetch_gap_s:
                self._refetched_at = self._clock()
                await self._fetch()
        return self._keys.get(kid)

    async def refresh(self) -> None:
        """The periodic fetch (and the first, at start)."""
        async with self._lock:
            await self._fetch()

    async def _fetch(self) -> None:
        try:
            response = await self._client.get(self._url)
            response.raise_for_status()
            if len(response.content) > MAX_JWKS_BYTES:
                raise ValueError(f"the JWKS is over {MAX_JWKS_BYTES} bytes")
            keys = parse_jwks(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            self._outage.failed(exc)  # the old keys stay: the host being down logs out nobody
            return
        self._outage.recovered()
        if keys.keys() != self._keys.keys():
            log.info("JWKS at %s: keys %s", self._url, ", ".join(sorted(keys)) or "none")
        self._keys = keys

    async def aclose(self) -> None:
        await self._client.aclose()


class SessionVerifier:
    """`await verify(token)`: the session a host-app token proves, or `InvalidSession` saying why."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        jwks: JwksKeys | None = None,
    ) -> None:
        self._secret = settings.hub_secret
        self._rules = settings.token_rules
        self._clock = clock
        self._jwks = jwks or (JwksKeys(settings.jwks_url) if settings.jwks_url else None)
        self._background = Background(log)

    async def start(self) -> None:
        if self._jwks is not None:
            self._background.every("JWKS refresh", JWKS_REFRESH_S, self._jwks.refresh, first_delay_s=0)

    async def stop(self) -> None:
        await self._background.stop()
        if self._jwks is not None:
            await self._jwks.aclose()

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
        key = await self._jwks.key(kid)
        if key is None:
            raise InvalidSession(f"key {kid!r} is not in the host's JWKS")
        return key
