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
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def key(self, kid: str | None) -> PyJWK:
        """The key named `kid` (None: the set's only key). Raises UnknownKey or KeySetUnavailable."""
        if self._fresh():
            found = self._find(kid)
            if found is not None or not self._may_refetch():
                return self._found_or_raise(found, kid)
        async with self._lock:
            found = self._find(kid) if self._fresh() else None
            if found is None and (not self._fresh() or self._may_refetch()):
                await self._fetch()
                found = self._find(kid)
        return self._found_or_raise(found, kid)

    def _fresh(self) -> bool:
        return self._fetched_at is not None and self._clock() - self._fetched_at < self._max_age_s

    def _may_refetch(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= self._refetch_s

    def _find(self, kid: str | None) -> PyJWK | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    @staticmethod
    def _found_or_raise(found: PyJWK | None, kid: str | None) -> PyJWK:
        if found is None:
            raise UnknownKey(f"no key with kid {kid!r}" if kid is not None else "the token names no kid")
        return found

    async def _fetch(self) -> None:
        self.fetches += 1
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
        self._keys = parse_key_set(response.content)
        self._fetched_at = self._clock()


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
