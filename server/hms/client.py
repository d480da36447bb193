"""An async client for 100ms's REST API v2 (contract §2) on `httpx.AsyncClient`.

    async with HmsClient(settings.hms_api_base, ManagementTokens(key, secret)) as hms:
        room = await hms.create_room("evt42-r1", template_id=settings.hms_template_id)
        async for asset in hms.list_recording_assets(room_id=room.id): ...

`base_url` is the API root *including* `/v2` (`https://api.100ms.live/v2`, as in HMS_API_BASE).
Answers are parsed by `models.py`; failures raise the tree drawn in `errors.py`.

Retries. Every call is tried up to `max_attempts` times, with exponential backoff and full jitter
(`uniform(0, min(backoff_max_s, backoff_base_s * 2**n))`), or exactly the server's `Retry-After`
when it sends one; a Retry-After longer than `backoff_max_s` ends the call at once with
`HmsRateLimited`/`HmsUnavailable` carrying `retry_after_s`, since waiting it out in a request
path is worse than letting the caller schedule it. What is retried depends on the call:

- idempotent calls (every GET; create_room, which 100ms treats as an upsert by name, §2.2 and
  §5 item 10, with the body serialised once and resent byte for byte; update/disable/enable,
  which set state) are retried on 429, 5xx, timeouts and connection errors;
- the others (remove_peer, remove_role, end_room, start/stop_recording) would act twice if a
  first attempt reached 100ms and only its answer was lost, so they are retried only where the
  request certainly did not act: a refused or timed-out *connect* (nothing was sent) and 429
  (refused before processing). A 5xx or read timeout on them raises `HmsUnavailable` at once.

A 401/403 invalidates the cached management token and retries once with a freshly minted one,
whatever the call (as 100ms's Node SDK does, contract §1.3); a second one raises `HmsAuthError`.
One log line per retry on "proctorhub.hms.client" names the call, the attempt and the cause.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from server.hms.errors import HmsError, HmsProtocolError, HmsUnavailable, error_for_status
from server.hms.models import (
    ActiveRoom,
    BadAnswer,
    Json,
    Peer,
    Recording,
    RecordingAsset,
    Room,
    Session,
    next_start,
    parse_active_room_untrusted,
    parse_page_untrusted,
    parse_peer_untrusted,
    parse_peers_untrusted,
    parse_presigned_url_untrusted,
    parse_recording_asset_untrusted,
    parse_recording_untrusted,
    parse_room_untrusted,
    parse_session_untrusted,
    recording_info_for_s3,
)
from server.hms.tokens import ManagementTokens

__all__ = ["HmsClient", "HmsError", "recording_info_for_s3"]

log = logging.getLogger("proctorhub.hms.client")

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

#: Fields `POST /v2/rooms/{id}` takes (§2.2 update, disable/enable).
UPDATE_FIELDS = frozenset(("name", "description", "recording_info", "region", "large_room", "size"))
UPDATE_FIELDS |= {"max_duration_seconds", "polls", "webhook", "enabled"}
MIN_PAGE, MAX_PAGE = 10, 100  # §2.1: `limit` 10-100

# Transport errors raised before any byte of the request left: safe to resend anything.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Transport errors after which the request may or may not have been acted on.
_MAYBE_SENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


# -- retry policy: pure ------------------------------------------------------------------------


def backoff_delay(attempt: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Full jitter: a uniform wait in [0, min(max_s, base_s * 2**(attempt-1))] after `attempt` tries."""
    ceiling = min(max_s, base_s * 2 ** min(attempt - 1, 62))
    return rng.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - now
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def may_retry_status(status: int, idempotent: bool) -> bool:
    return status == 429 or (idempotent and 500 <= status <= 599)


def may_retry_error(exc: httpx.TransportError, idempotent: bool) -> bool:
    if isinstance(exc, _NOT_SENT):
        return True
    return idempotent and isinstance(exc, _MAYBE_SENT)


def describe_error(exc: httpx.TransportError) -> str:
    kind = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection error"
    detail = str(exc)
    return f"{kind} ({type(exc).__name__}{': ' + detail if detail else ''})"


def call_label(call: str, /, **args: object) -> str:
    """`create_room(name='evt1-r1')`: the call as errors and logs name it (never secrets)."""
    shown = ", ".join(f"{key}={value!r}" for key, value in args.items() if value is not None)
    return f"{call}({shown})"


def _error_body(response: httpx.Response) -> tuple[str, tuple[str, ...]]:
    """100ms's `{code, message, details}` (§2.1), or what else the answer says."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        details = body.get("details")
        shown = tuple(str(d) for d in details) if isinstance(details, list) else ()
        return body["message"], shown
    text = response.text.strip()[:200]
    return text or response.reason_phrase or "error", ()


def _path(*parts: str) -> str:
    return "/".join(quote(part, safe="") for part in parts)


def _flag(value: bool | None) -> str | None:
    return None if value is None else ("true" if value else "false")


def _query(**params: object) -> dict[str, str]:
    return {k: str(v) for k, v in params.items() if v is not None}


def _ignore(data: object) -> None:
    """For action calls, whose answer (`{"message": ...}`) carries nothing to keep."""


def _page_size(value: int) -> int:
    if not MIN_PAGE <= value <= MAX_PAGE:
        raise ValueError(f"page_size must be between {MIN_PAGE} and {MAX_PAGE}, got {value}")
    return value


class HmsClient:
    def __init__(
        self,
        base_url: str,
        tokens: ManagementTokens,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 10.0,
        max_attempts: int = 5,
        backoff_base_s: float = 0.2,
        backoff_max_s: float = 5.0,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self._tokens = tokens
        self._max_attempts = max_attempts
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            transport=transport,
            timeout=httpx.Timeout(timeout_s),
            headers={"Accept": "application/json"},
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> HmsClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- rooms (§2.2) ----------------------------------------------------------------------------

    async def create_room(
        self,
        name: str,
        *,
        description: str | None = None,
        template_id: str | None = None,
        region: str | None = None,
        recording_info: Json | None = None,
        webhook: Json | None = None,
        size: int | None = None,
        max_duration_seconds: int | None = None,
    ) -> Room:
        """Create the room `name`, or reconfigure the existing one of that name (100ms upserts)."""
        if not name:
            raise ValueError("create_room needs a name: it is what makes a retried create safe")
        body = {
            "name": name,
            "description": description,
            "template_id": template_id,
            "region": region,
            "recording_info": recording_info,
            "webhook": webhook,
            "size": size,
            "max_duration_seconds": max_duration_seconds,
        }
        body = {k: v for k, v in body.items() if v is not None}
        call = call_label("create_room", name=name)
        return await self._call(call, "POST", "rooms", parse_room_untrusted, body=body)

    async def get_room(self, room_id: str) -> Room:
        call = call_label("get_room", room_id=room_id)
        return await self._call(call, "GET", _path("rooms", room_id), parse_room_untrusted)

    async def find_room(self, name: str, *, enabled: bool = True) -> Room | None:
        """The room called `name` (case-insensitive), or None. 100ms lists only enabled rooms
        unless asked: pass `enabled=False` to find a disabled one."""
        call = call_label("find_room", name=name)
        params = _query(name=name, enabled=_flag(enabled))
        page = await self._call(call, "GET", "rooms", parse_page_untrusted, params=params)
        rooms = (self._parse(call, parse_room_untrusted, item) for item in page.data)
        return next((room for room in rooms if room.name.lower() == name.lower()), None)

    async def update_room(self, room_id: str, **fields: Any) -> Room:
        unknown = set(fields) - UPDATE_FIELDS
        if unknown:
            raise TypeError(
                f"update_room() got unknown fields {sorted(unknown)}; known: {sorted(UPDATE_FIELDS)}"
            )
        call = call_label("update_room", room_id=room_id)
        return await self._call(call, "POST", _path("rooms", room_id), parse_room_untrusted, body=fields)

    async def disable_room(self, room_id: str) -> Room:
        """New joins are refused; a running session goes on (§2.2)."""
        call = call_label("disable_room", room_id=room_id)
        body = {"enabled": False}
        return await self._call(call, "POST", _path("rooms", room_id), parse_room_untrusted, body=body)

    async def enable_room(self, room_id: str) -> Room:
        call = call_label("enable_room", room_id=room_id)
        body = {"enabled": True}
        return await self._call(call, "POST", _path("rooms", room_id), parse_room_untrusted, body=body)

    def list_rooms(
        self, *, enabled: bool | None = True, name: str | None = None, page_size: int = 100
    ) -> AsyncIterator[Room]:
        call = call_label("list_rooms", enabled=enabled, name=name)
        params = _query(enabled=_flag(enabled), name=name)
        return self._paginate(call, "rooms", params, _page_size(page_size), parse_room_untrusted)

    # -- active rooms (§2.3) -------------------------------------------------------------------

    async def get_active_room(self, room_id: str) -> ActiveRoom:
        call = call_label("get_active_room", room_id=room_id)
        return await self._call(call, "GET", _path("active-rooms", room_id), parse_active_room_untrusted)

    async def list_active_peers(
        self, room_id: str, *, user_id: str | None = None, role: str | None = None
    ) -> dict[str, Peer]:
        """Peers of the running session by peer id (empty when none match)."""
        call = call_label("list_active_peers", room_id=room_id, user_id=user_id, role=role)
        path = _path("active-rooms", room_id, "peers")
        return await self._call(
            call, "GET", path, parse_peers_untrusted, params=_query(user_id=user_id, role=role)
        )

    async def get_peer(self, room_id: str, peer_id: str) -> Peer:
        call = call_label("get_peer", room_id=room_id, peer_id=peer_id)
        return await self._call(
            call, "GET", _path("active-rooms", room_id, "peers", peer_id), parse_peer_untrusted
        )

    async def remove_peer(self, room_id: str, peer_id: str, reason: str) -> None:
        """Ask 100ms to remove a peer; it leaves asynchronously (`peer.leave.success`, `peer kicked`)."""
        call = call_label("remove_peer", room_id=room_id, peer_id=peer_id)
        body = {"peer_id": peer_id, "reason": reason}
        await self._call(
            call, "POST", _path("active-rooms", room_id, "remove-peers"), _ignore, body=body, idempotent=False
        )

    async def remove_role(self, room_id: str, role: str, reason: str) -> None:
        call = call_label("remove_role", room_id=room_id, role=role)
        body = {"role": role, "reason": reason}
        await self._call(
            call, "POST", _path("active-rooms", room_id, "remove-peers"), _ignore, body=body, idempotent=False
        )

    async def end_room(self, room_id: str, *, reason: str | None = None, lock: bool = False) -> None:
        """End the running session; `lock=True` also disables the room."""
        call = call_label("end_room", room_id=room_id, lock=lock or None)
        body: Json = {"lock": lock} if reason is None else {"reason": reason, "lock": lock}
        await self._call(
            call, "POST", _path("active-rooms", room_id, "end-room"), _ignore, body=body, idempotent=False
        )

    # -- sessions (§2.4) -----------------------------------------------------------------------

    def list_sessions(
        self, room_id: str | None = None, *, active: bool | None = None
    ) -> AsyncIterator[Session]:
        """Sessions as 100ms lists them. `active=None` sends no filter, and 100ms then lists
        only active sessions (§2.4); pass `active=False` for finished ones."""
        call = call_label("list_sessions", room_id=room_id, active=active)
        params = _query(room_id=room_id, active=_flag(active))
        return self._paginate(call, "sessions", params, MAX_PAGE, parse_session_untrusted)

    async def get_session(self, session_id: str) -> Session:
        call = call_label("get_session", session_id=session_id)
        return await self._call(call, "GET", _path("sessions", session_id), parse_session_untrusted)

    # -- recording assets (§2.6) ---------------------------------------------------------------

    def list_recording_assets(
        self, *, room_id: str | None = None, session_id: str | None = None
    ) -> AsyncIterator[RecordingAsset]:
        call = call_label("list_recording_assets", room_id=room_id, session_id=session_id)
        params = _query(room_id=room_id, session_id=session_id)
        return self._paginate(call, "recording-assets", params, MAX_PAGE, parse_recording_asset_untrusted)

    async def get_recording_asset(self, asset_id: str) -> RecordingAsset:
        call = call_label("get_recording_asset", asset_id=asset_id)
        return await self._call(
            call, "GET", _path("recording-assets", asset_id), parse_recording_asset_untrusted
        )

    async def presigned_url(self, asset_id: str, *, presign_duration_s: int | None = None) -> str:
        """A download URL for the asset (100ms's default expiry: 3 days on S3)."""
        call = call_label("presigned_url", asset_id=asset_id)
        path = _path("recording-assets", asset_id, "presigned-url")
        params = _query(presign_duration=presign_duration_s)
        return await self._call(call, "GET", path, parse_presigned_url_untrusted, params=params)

    # -- composite recordings (§2.5) -----------------------------------------------------------

    async def start_recording(self, room_id: str, **body: Any) -> Recording:
        """Start a browser-composite job (`meeting_url`, `resolution`, ... as §2.5 lists)."""
        call = call_label("start_recording", room_id=room_id)
        path = _path("recordings", "room", room_id, "start")
        return await self._call(call, "POST", path, parse_recording_untrusted, body=body, idempotent=False)

    async def stop_recording(self, room_id: str) -> list[Recording]:
        """Stop every composite job in the room; the jobs answered are `stopping`."""
        call = call_label("stop_recording", room_id=room_id)
        path = _path("recordings", "room", room_id, "stop")
        page = await self._call(call, "POST", path, parse_page_untrusted, body={}, idempotent=False)
        return [self._parse(call, parse_recording_untrusted, item) for item in page.data]

    async def get_recording(self, recording_id: str) -> Recording:
        call = call_label("get_recording", recording_id=recording_id)
        return await self._call(call, "GET", _path("recordings", recording_id), parse_recording_untrusted)

    # -- machinery -----------------------------------------------------------------------------

    async def _paginate(
        self, call: str, path: str, params: dict[str, str], limit: int, parse: Callable[[object], T]
    ) -> AsyncIterator[T]:
        """Follow `{limit, data, last}`: `last` is the next `start`; an empty or short page ends it."""
        start: str | None = None
        while True:
            query = {**params, "limit": str(limit), **({"start": start} if start else {})}
            page = self._parse(
                call, parse_page_untrusted, await self._request(call, "GET", path, params=query)
            )
            for item in page.data:
                yield self._parse(call, parse, item)
            start = next_start(page, start, limit)
            if start is None:
                return

    async def _call(
        self,
        call: str,
        method: str,
        path: str,
        parse: Callable[[object], T],
        *,
        params: dict[str, str] | None = None,
        body: Json | None = None,
        idempotent: bool = True,
    ) -> T:
        data = await self._request(call, method, path, params=params, body=body, idempotent=idempotent)
        return self._parse(call, parse, data)

    def _parse(self, call: str, parse: Callable[[object], T], data: object) -> T:
        try:
            return parse(data)
        except BadAnswer as exc:
            raise HmsProtocolError(call, None, f"unexpected answer: {exc}") from None

    async def _request(
        self,
        call: str,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Json | None = None,
        idempotent: bool = True,
    ) -> object:
        """Send one call with the retries described in the module docstring; the decoded JSON."""
        # Serialised once: every attempt sends the very same bytes (create_room's upsert relies on it).
        content = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        attempt, fresh_token = 0, False
        while True:
            attempt += 1
            try:
                response = await self._send(method, path, params, content)
            except httpx.TransportError as exc:
                if attempt >= self._max_attempts or not may_retry_error(exc, idempotent):
                    raise HmsUnavailable(call, None, describe_error(exc), attempts=attempt) from exc
                await self._pause(call, attempt, describe_error(exc), None)
                continue
            status = response.status_code
            if status < 300:
                return self._decode(call, response)
            message, details = _error_body(response)
            if status in (401, 403) and not fresh_token:
                fresh_token, attempt = True, attempt - 1  # not a transient failure: no attempt spent
                self._tokens.invalidate()
                log.warning(
                    "hms retry call=%s attempt=%d/%d cause=%d %s delay=0s (fresh management token)",
                    call,
                    attempt + 1,
                    self._max_attempts,
                    status,
                    message,
                )
                continue
            retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
            waited_too_long = retry_after is not None and retry_after > self._backoff_max_s
            if attempt >= self._max_attempts or waited_too_long or not may_retry_status(status, idempotent):
                if fresh_token and status in (401, 403):
                    message += " (also with a freshly minted management token)"
                error = error_for_status(status)
                raise error(call, status, message, details, retry_after_s=retry_after, attempts=attempt)
            await self._pause(call, attempt, f"{status} {message}", retry_after)

    async def _send(
        self, method: str, path: str, params: dict[str, str] | None, content: bytes | None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self._tokens.get()}"}
        if content is not None:
            headers["Content-Type"] = "application/json"
        return await self._http.request(method, path, params=params, content=content, headers=headers)

    async def _pause(self, call: str, attempt: int, cause: str, retry_after: float | None) -> None:
        if retry_after is None:
            delay = backoff_delay(attempt, self._backoff_base_s, self._backoff_max_s, self._rng)
        else:
            delay = retry_after
        log.warning(
            "hms retry call=%s attempt=%d/%d cause=%s delay=%.3fs%s",
            call,
            attempt + 1,
            self._max_attempts,
            cause,
            delay,
            " (Retry-After)" if retry_after is not None else "",
        )
        await self._sleep(delay)

    def _decode(self, call: str, response: httpx.Response) -> object:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise HmsProtocolError(
                call, response.status_code, f"answer is not JSON: {response.text[:200]!r}"
            ) from None
