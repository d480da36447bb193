"""The Assessment Control Service, our side: a proctor asks the platform to flag, pause, resume,
terminate or give extra time to a candidate's attempt.

`POST /api/v1/events/{event_id}/candidates/{candidate_id}/acs` (admins and the event's proctors) and
`GET` the same path: the calls with their answers. Each call is stored (`pending`) before it is sent,
then kept with the platform's answer (`done`) or the last error (`failed`). The token comes from the
platform's token URL by OAuth2 client credentials with a JWT client assertion signed by the tool key,
scope `.../lti-ap/scope/control.all`; a token granted without that scope is refused, not used.

Sending retries a transient failure (no answer, 5xx, 429, 401) twice inside the request; a call still
failing stays `pending` (`202`) and every node's retry loop (every LTI_ACS_RETRY_S) sends the due ones
again with exponential backoff (one node per try, by a dedupe key), for up to a day. A call left
`pending` by a crash is resent the same way.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server.api.errors import ApiError
from server.api.events import json_body
from server.api.security import caller
from server.api.validation import invalid, json_object, no_unknown_fields, text
from server.lti.messages import (
    ACS_ACTIONS,
    ACS_CONTENT_TYPE,
    ACS_SCOPE,
    JWT_BEARER,
    AcsRefused,
    AcsRequest,
    acs_body,
    client_assertion_claims,
)
from server.lti.toolkey import ToolKey
from server.store.base import Store
from server.store.lti import AcsCall, LtiPlatform

RETRY_DELAYS_S = (0.5, 2.0)
"""Quick retries inside the request that made the call."""
REQUEST_TIMEOUT_S = 5.0
"""The HTTP client's timeout (server/lti/tool.py): one try takes at most this long."""
MAX_BACKOFF_S = 3600.0
GIVE_UP_S = 24 * 3600.0
"""A call still failing a day after it was made is `failed`."""
MAX_ANSWER_BYTES = 64 * 1024


class AcsFailed(Exception):
    """The platform did not do it; `transient` when trying again may help."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass
class _Token:
    value: str
    expires_at: float


class AcsClient:
    """Tokens (cached per platform until shortly before they expire) and control calls."""

    def __init__(
        self, http: httpx.AsyncClient, key: Callable[[], ToolKey], clock: Callable[[], float] = time.time
    ):
        self._http = http
        self._key = key
        self._clock = clock
        self._tokens: dict[str, _Token] = {}

    async def token(self, platform: LtiPlatform) -> str:
        held = self._tokens.get(platform.platform_id)
        if held is not None and held.expires_at > self._clock() + 30:
            return held.value
        now = self._clock()
        assertion = self._key().sign(
            client_assertion_claims(platform, now=now, jti=secrets.token_urlsafe(16))
        )
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion,
            "scope": ACS_SCOPE,
        }
        answer = await self._post(platform.auth_token_url, data=form, what="the token endpoint")
        value, scope = answer.get("access_token"), answer.get("scope", ACS_SCOPE)
        if not isinstance(value, str) or not value:
            raise AcsFailed("the token endpoint answered without an access_token", transient=False)
        if not isinstance(scope, str) or ACS_SCOPE not in scope.split():
            raise AcsFailed(f"the platform did not grant the ACS scope (granted {scope!r})", transient=False)
        expires_in = answer.get("expires_in", 3600)
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else 3600.0
        self._tokens[platform.platform_id] = _Token(value, now + lifetime)
        return value

    async def control(self, platform: LtiPlatform, url: str, body: dict[str, Any]) -> dict[str, Any]:
        token = await self.token(platform)
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": ACS_CONTENT_TYPE,
            "Accept": ACS_CONTENT_TYPE,
        }
        try:
            return await self._post(url, json=body, headers=headers, what="the assessment control URL")
        except AcsFailed as exc:
            if "HTTP 401" in str(exc):
                self._tokens.pop(platform.platform_id, None)  # a revoked token: the next try gets a new one
            raise

    async def _post(self, url: str, *, what: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._http.post(url, **kwargs)
        except httpx.HTTPError as exc:
            raise AcsFailed(f"{what} could not be reached ({type(exc).__name__})", transient=True) from None
        if response.status_code != 200:
            transient = response.status_code >= 500 or response.status_code in (401, 429)
            raise AcsFailed(f"{what} answered HTTP {response.status_code}", transient=transient)
        try:
            answer = response.json() if len(response.content) <= MAX_ANSWER_BYTES else None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise AcsFailed(f"{what} answered something other than a JSON object", transient=False)
        return answer


class AcsService:
    """Durable calls: stored, sent (with quick retries), stored again with the answer. A call still
    failing transiently stays `pending` and any node's retry loop sends it again with backoff, until
    GIVE_UP_S after it was made."""

    def __init__(
        self,
        store: Store,
        client: AcsClient,
        *,
        retry_s: float,
        delays: tuple[float, ...] = RETRY_DELAYS_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._client = client
        self._retry_s = retry_s
        self._delays = delays
        self._clock = clock

    async def call(self, event_id: str, user_id: str, request: AcsRequest, *, by: str) -> AcsCall:
        attempts = [a for a in await self._store.lti.attempts(event_id, user_id) if a.ended_at is None]
        if not attempts:
            raise ApiError(404, "not_found", f"candidate {user_id!r} has no open LTI attempt in {event_id!r}")
        attempt = attempts[-1]
        platform = await self._store.lti.get_platform(attempt.platform_id)
        if platform is None:
            raise ApiError(404, "not_found", "the attempt's platform is no longer registered")
        now = self._clock()
        at = request.at if request.at is not None else now
        incident_time = datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
        try:
            body = acs_body(attempt, platform, request, incident_time=incident_time)
        except AcsRefused as exc:
            raise ApiError(409, "not_offered", str(exc)) from None
        call = AcsCall(
            secrets.token_hex(8),
            event_id,
            user_id,
            attempt.attempt_number,
            request.action,
            body,
            now,
            by,
            # the retry loop leaves it alone while this request may still be trying
            next_try_at=now + sum(self._delays) + (len(self._delays) + 1) * REQUEST_TIMEOUT_S + self._retry_s,
        )
        await self._store.lti.save_acs_call(call)  # stored before it is sent
        url = str((attempt.acs or {})["assessment_control_url"])
        return await self._send(call, platform, url, self._delays)

    async def _send(
        self, call: AcsCall, platform: LtiPlatform, url: str, delays: tuple[float, ...]
    ) -> AcsCall:
        for delay in (*delays, None):
            call = replace(call, tries=call.tries + 1)
            try:
                answer = await self._client.control(platform, url, call.body)
            except AcsFailed as exc:
                call = replace(call, error=str(exc))
                if not exc.transient or self._clock() - call.created_at >= GIVE_UP_S:
                    call = replace(call, state="failed", answered_at=self._clock(), next_try_at=None)
                    break
                if delay is None:
                    retries = call.tries - len(self._delays) - 1  # tries after the first request's
                    backoff = min(self._retry_s * 2 ** max(retries, 0), MAX_BACKOFF_S)
                    call = replace(call, next_try_at=self._clock() + backoff)
                    break
                await self._store.lti.save_acs_call(call)
                await asyncio.sleep(delay)
            else:
                call = replace(
                    call, state="done", answer=answer, error=None, answered_at=self._clock(), next_try_at=None
                )
                break
        await self._store.lti.save_acs_call(call)
        return call

    async def retry_pending(self) -> int:
        """Send again the pending calls that are due (one node takes each try); how many were sent."""
        sent = 0
        now = self._clock()
        for call in await self._store.lti.pending_acs_calls():
            if call.next_try_at is None or call.next_try_at > now:
                continue
            claim = f"lti-acs-try:{call.call_id}:{call.tries}"
            if not await self._store.dedupe.once(claim, now=now, ttl_s=max(self._retry_s, 60.0)):
                continue
            attempt = next(
                (
                    a
                    for a in await self._store.lti.attempts(call.event_id, call.user_id)
                    if a.attempt_number == call.attempt_number
                ),
                None,
            )
            platform = None if attempt is None else await self._store.lti.get_platform(attempt.platform_id)
            if attempt is None or platform is None or attempt.acs is None:
                gone = replace(
                    call, state="failed", error="the attempt or its platform is gone", next_try_at=None
                )
                await self._store.lti.save_acs_call(gone)
                continue
            await self._send(call, platform, str(attempt.acs["assessment_control_url"]), ())
            sent += 1
        return sent


def _severity(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise invalid(field, "must be a number from 0 to 1")
    return float(value)


def _extra_time(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 86_400:
        raise invalid(field, "must be whole seconds from 0 to 86400")
    return value


def _action(field: str, value: object) -> str:
    if value not in ACS_ACTIONS:
        raise invalid(field, f"must be one of {', '.join(ACS_ACTIONS)}")
    return str(value)


ACS_FIELDS = {
    "action": _action,
    "reason_code": text(1, 64),
    "reason_msg": text(0, 1000),
    "incident_severity": _severity,
    "extra_time": _extra_time,
}


def parse_acs_request(body: object) -> AcsRequest:
    raw = json_object(body)
    no_unknown_fields(raw, ACS_FIELDS)
    values = {name: ACS_FIELDS[name](name, value) for name, value in raw.items()}
    if "action" not in values:
        raise invalid("action", "is required")
    return AcsRequest(**values)


class CandidateAcs(HTTPEndpoint):
    """`/api/v1/events/{event_id}/candidates/{candidate_id}/acs`."""

    async def post(self, request: Request) -> JSONResponse:
        event_id: str = request.path_params["event_id"]
        who = await caller(request)
        who.require_reader(event_id)  # admins of the event and its proctors
        wanted = parse_acs_request(await json_body(request))
        service: AcsService = request.app.state.lti.acs
        by = who.session.user_id if who.session is not None else "api"
        call = await service.call(event_id, request.path_params["candidate_id"], wanted, by=by)
        status = {"done": 200, "pending": 202}.get(call.state, 502)
        return JSONResponse(call.to_dict(), status_code=status)

    async def get(self, request: Request) -> JSONResponse:
        event_id: str = request.path_params["event_id"]
        (await caller(request)).require_reader(event_id)
        store: Store = request.app.state.store
        calls = await store.lti.acs_calls(event_id, request.path_params["candidate_id"])
        return JSONResponse({"calls": [c.to_dict() for c in calls]})


routes = [Route("/api/v1/events/{event_id}/candidates/{candidate_id}/acs", CandidateAcs)]
