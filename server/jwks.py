"""A remote JSON Web Key Set, cached: the keys an LMS signs its id_tokens with (server/lti/tool.py) and
those a host application signs session tokens with (server/verifier.py). One cache, two settings:

    max_age_s     a number: keys older than this are not used and the set is fetched again at the
                  next lookup (a platform that is down refuses launches: KeySetUnavailable).
                  None: keys stay usable until a fetch replaces them (the host being down logs out
                  nobody); the owner refreshes them on its own schedule with `refresh()`
    refetch_s     a kid not in the set fetches it again (the publisher rotated), at most once per
                  refetch_s: a stream of made-up kids cannot make us hammer the publisher. Fetches for
                  lookups count (the first, lazy one too), `refresh()` does not

A failed fetch keeps the keys held and is logged once per outage. Concurrent lookups share one fetch.
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

from server.auth import ASYMMETRIC
from server.background import Outage

log = logging.getLogger("proctorhub.jwks")

MAX_JWKS_BYTES = 256 * 1024


class KeySetUnavailable(Exception):
    """The key set could not be fetched or read, and no usable keys are held; the message says why."""


class UnknownKey(Exception):
    """No key of the set has that `kid` (after a refetch, or within the refetch interval)."""


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
        if entry.get("use", "sig") != "sig":  # an encryption key never signs a token
            continue
        try:
            key = jwt.PyJWK(entry)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:  # one bad key never costs the others
            log.warning("JWKS: key %r left out: %s", entry.get("kid"), exc)
            continue
        if key.algorithm_name in ASYMMETRIC:
            keys[entry["kid"]] = key
    return keys


class KeySet:
    def __init__(
        self,
        url: str,
        http: httpx.AsyncClient,
        *,
        max_age_s: float | None = 3600.0,
        refetch_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._http = http
        self._max_age_s = max_age_s
        self._refetch_s = refetch_s
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._looked_up_at = -math.inf
        self._error: str | None = None
        self._lock = asyncio.Lock()
        self._outage = Outage(log, f"fetching the JWKS at {url}")

    async def key(self, kid: str | None) -> jwt.PyJWK:
        """The key named `kid` (None: the set's only key). Raises UnknownKey or KeySetUnavailable."""
        found = self._find(kid)
        if found is None and self._may_fetch():
            async with self._lock:
                found = self._find(kid)
                if found is None and self._may_fetch():
                    self._looked_up_at = self._clock()
                    await self._fetch()
                    found = self._find(kid)
        if found is not None:
            return found
        if self._error is not None and not self._usable():
            raise KeySetUnavailable(self._error)
        raise UnknownKey(f"no key with kid {kid!r}" if kid is not None else "the token names no kid")

    async def refresh(self) -> None:
        """Fetch the set now (an owner's periodic refresh); a failure keeps the keys held."""
        async with self._lock:
            await self._fetch()

    def _usable(self) -> bool:
        if self._fetched_at is None:
            return False
        return self._max_age_s is None or self._clock() - self._fetched_at < self._max_age_s

    def _may_fetch(self) -> bool:
        """A stale set is always fetched again; a kid not in a usable one only every `refetch_s`."""
        return (not self._usable() and self._error is None) or (
            self._clock() - self._looked_up_at >= self._refetch_s
        )

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if not self._usable():
            return None
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _fetch(self) -> None:
        try:
            keys = await self._download()
        except KeySetUnavailable as exc:
            self._error = str(exc)
            self._outage.failed(exc)
            return
        self._outage.recovered()
        if keys.keys() != self._keys.keys():
            log.info("JWKS at %s: keys %s", self.url, ", ".join(sorted(keys)) or "none")
        self._keys, self._fetched_at, self._error = keys, self._clock(), None

    async def _download(self) -> dict[str, jwt.PyJWK]:
        try:
            response = await self._http.get(self.url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise KeySetUnavailable(
                f"the key set at {self.url} could not be fetched ({type(exc).__name__})"
            ) from None
        if response.status_code != 200:
            raise KeySetUnavailable(f"the key set at {self.url} answered HTTP {response.status_code}")
        if len(response.content) > MAX_JWKS_BYTES:
            raise KeySetUnavailable(f"the key set at {self.url} is larger than {MAX_JWKS_BYTES} bytes")
        try:
            return parse_jwks(response.json())
        except ValueError as exc:
            raise KeySetUnavailable(
                f"the key set at {self.url} is not a valid JWKS document ({exc})"
            ) from None


class KeySets:
    """One `KeySet` per URL (an LMS each), sharing one HTTP client and one set of options."""

    def __init__(self, http: httpx.AsyncClient, **options: Any) -> None:
        self._http = http
        self._options = options
        self._sets: dict[str, KeySet] = {}

    def at(self, url: str) -> KeySet:
        if url not in self._sets:
            self._sets[url] = KeySet(url, self._http, **self._options)
        return self._sets[url]

    async def key(self, url: str, kid: str | None) -> jwt.PyJWK:
        return await self.at(url).key(kid)
