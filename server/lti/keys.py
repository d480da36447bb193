"""A remote JSON Web Key Set, cached: the keys a platform signs its id_tokens with.

Fetched with httpx on first use and kept `max_age_s`; a `kid` not in the cached set triggers a refetch
(the platform may have rotated), at most once every `refetch_s`, so a stream of forged kids cannot make
us hammer the platform. Concurrent callers share one fetch. Nothing here is LTI-specific: any verifier
of tokens signed by a JWKS publisher (host-app session tokens too) can use `KeySets`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from jwt import PyJWK, PyJWKSet
from jwt.exceptions import PyJWKError, PyJWKSetError

MAX_JWKS_BYTES = 256 * 1024


class KeySetUnavailable(Exception):
    """The key set could not be fetched or read; the message says why (safe to show)."""


class UnknownKey(Exception):
    """No key of the set has that `kid` (after a refetch, or within the refetch interval)."""


def parse_key_set(raw: bytes) -> dict[str, PyJWK]:
    """`kid` -> key for the usable keys of a JWKS document; keys without a `kid` are kept under ""."""
    try:
        document: Any = json.loads(raw)
        keys = PyJWKSet.from_dict(document).keys
    except (ValueError, PyJWKSetError, PyJWKError, AttributeError, TypeError):
        raise KeySetUnavailable("the key set is not a valid JWKS document") from None
    return {str(key.key_id or ""): key for key in keys}


class RemoteKeySet:
    def __init__(
        self,
        url: str,
        http: httpx.AsyncClient,
        *,
        max_age_s: float = 3600.0,
        refetch_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._http = http
        self._max_age_s = max_age_s
        self._refetch_s = refetch_s
        self._clock = clock
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None
        self._tried_at: float | None = None
        self._error: str | None = None
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> PyJWK:
        """The key named `kid` (None: the set's only key). Raises UnknownKey or KeySetUnavailable."""
        found = self._find(kid) if self._fresh() else None
        if found is None and self._may_fetch():
            async with self._lock:
                found = self._find(kid) if self._fresh() else None
                if found is None and self._may_fetch():
                    await self._fetch()
                    found = self._find(kid)
        if found is None and self._error is not None and not self._fresh():
            raise KeySetUnavailable(self._error)
        if found is None:
            raise UnknownKey(f"no key with kid {kid!r}" if kid is not None else "the token names no kid")
        return found

    def _fresh(self) -> bool:
        return self._fetched_at is not None and self._clock() - self._fetched_at < self._max_age_s

    def _may_fetch(self) -> bool:
        """Never tried, or the set is too old, or the last try is `refetch_s` behind us (a failed try
        always waits that long: a platform that is down is not asked at every launch)."""
        if self._tried_at is None:
            return True
        waited = self._clock() - self._tried_at >= self._refetch_s
        if self._error is not None or self._fresh():
            return waited
        return True

    def _find(self, kid: str | None) -> PyJWK | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _fetch(self) -> None:
        self._tried_at = self._clock()
        try:
            self._keys = await self._download()
        except KeySetUnavailable as exc:
            self._error = str(exc)
            raise
        self._fetched_at = self._tried_at
        self._error = None

    async def _download(self) -> dict[str, PyJWK]:
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
        return parse_key_set(response.content)


class KeySets:
    """One `RemoteKeySet` per URL, sharing one HTTP client."""

    def __init__(self, http: httpx.AsyncClient, **options: Any) -> None:
        self._http = http
        self._options = options
        self._sets: dict[str, RemoteKeySet] = {}

    def at(self, url: str) -> RemoteKeySet:
        if url not in self._sets:
            self._sets[url] = RemoteKeySet(url, self._http, **self._options)
        return self._sets[url]

    async def key(self, url: str, kid: str | None) -> PyJWK:
        return await self.at(url).key(kid)
