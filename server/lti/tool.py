"""The tool's LTI endpoints: `GET /lti/jwks`, `GET|POST /lti/login`, `POST /lti/launch` and
`POST /lti/start-assessment` (docs/lti.md, docs/protocol.md "LTI").

The login and the launch are browser navigations: a refusal is a readable HTML page with a 4xx status.
`/lti/start-assessment` is called by our launch page with the candidate's session and answers JSON.

The state cookie: `/lti/login` sets `ph_lti_<state>` (a random binding value, HttpOnly, path /lti/) and
`/lti/launch` demands it, so an id_token posted from another browser is refused. The platform's
form_post is a cross-site POST: browsers send only `SameSite=None` cookies with it, and those only with
`Secure`, so over https the cookie is `SameSite=None; Secure`. Over plain http (development, tests on one
host) it is `SameSite=Lax`, which survives only when platform and tool share a site.
"""

from __future__ import annotations

import hmac
import html
import logging
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import jwt
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from server.api.errors import ApiError
from server.api.events import json_body
from server.api.pages import content_security_policy
from server.auth import InvalidSession, mint_session, verify_session
from server.background import Background
from server.config import Settings
from server.hubs import Hub
from server.jwks import KeySets, KeySetUnavailable, UnknownKey
from server.lti.control import REQUEST_TIMEOUT_S, AcsClient, AcsService
from server.lti.control import routes as acs_routes
from server.lti.frames import CHECK_COOKIE, cookie_check_page, framed, new_window_login
from server.lti.messages import (
    END_ASSESSMENT,
    Launch,
    LaunchRefused,
    check_target,
    display_name,
    event_id_for,
    read_launch,
    same_launch_url,
    start_assessment_claims,
    user_id_for,
)
from server.lti.policy import AcsPolicy
from server.lti.registration import tool_base, tool_urls
from server.lti.toolkey import ALGORITHM, ToolKey, load_tool_key
from server.store.base import Store
from server.store.lti import LtiAttempt, LtiLogin, LtiPlatform
from server.store.records import EventConfig

log = logging.getLogger("proctorhub.lti")

LOGIN_TTL_S = 600.0
"""How long a login may take between our redirect and the platform's form post."""
NONCE_TTL_S = 3600.0
LEEWAY_S = 60.0
START_ASSESSMENT_TTL_S = 300.0
COOKIE_PREFIX = "ph_lti_"
SESSION_META = '<meta name="ph-session" content="">'


MAX_FORM_BYTES = 64 * 1024


async def form_fields(request: Request) -> dict[str, str]:
    """An urlencoded form post (the OIDC form_post), read without python-multipart; {} if it is not one."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return {}
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        return {}
    return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))


def refusal(status: int, message: str) -> HTMLResponse:
    """A page a person can read, never a traceback."""
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Proctoring launch refused</title>'
        '<link rel="stylesheet" href="/css/app.css"></head><body><main class="card">'
        "<h1>This proctored exam could not start</h1>"
        f"<p>{html.escape(message)}</p>"
        "<p>Go back to your course and open the exam again. If this keeps happening, tell your exam "
        "administrator what this page says.</p></main></body></html>"
    )
    return HTMLResponse(body, status_code=status)


def ended_page() -> HTMLResponse:
    return HTMLResponse(
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Exam ended</title>'
        '<link rel="stylesheet" href="/css/app.css"></head><body><main class="card">'
        "<h1>Your proctored exam has ended</h1><p>You can close the proctoring window now.</p>"
        "</main></body></html>"
    )


class LtiTool:
    def __init__(self, settings: Settings, store: Store, hub: Hub, launch_page: Path) -> None:
        self._settings = settings
        self._store = store
        self._hub = hub
        self._launch_page = launch_page
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(REQUEST_TIMEOUT_S), follow_redirects=False)
        self.key_sets = KeySets(self._http)
        self._key: ToolKey | None = None
        self.acs = AcsService(
            store, AcsClient(self._http, lambda: self.key), retry_s=settings.lti_acs_retry_s
        )
        self._background = Background(log)
        self.policy = AcsPolicy(store, self.acs, gap_flag_s=settings.lti_acs_flag_gap_s)

    async def start(self) -> None:
        self._key = await load_tool_key(self._settings, self._store.lti)
        retry_s = self._settings.lti_acs_retry_s
        self._background.every("lti acs retries", retry_s, self.acs.retry_pending, first_delay_s=retry_s)

    async def stop(self) -> None:
        await self._background.stop()
        await self.policy.stop()
        await self._http.aclose()

    @property
    def key(self) -> ToolKey:
        if self._key is None:
            raise RuntimeError("Expected the LTI tool key to be loaded at start-up, but it was not")
        return self._key

    @property
    def routes(self) -> list[Route]:
        return [
            Route("/lti/jwks", self.jwks, methods=["GET"]),
            Route("/lti/login", self.login, methods=["GET", "POST"]),
            Route("/lti/launch", self.launch, methods=["POST"]),
            Route("/lti/start-assessment", self.start_assessment, methods=["POST"]),
            *acs_routes,
        ]

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(self.key.jwks(), headers={"Cache-Control": "max-age=300"})

    # OIDC third-party login initiation

    async def login(self, request: Request) -> Response:
        params: dict[str, Any] = dict(request.query_params)
        if request.method == "POST":
            params.update(await form_fields(request))
        try:
            platform = await self._platform_of(params)
        except LaunchRefused as exc:
            return refusal(exc.status, exc.message)
        base = tool_base(request)
        launch_url = tool_urls(base)["launch_url"]
        if not same_launch_url(params["target_link_uri"], launch_url):
            return refusal(
                400,
                f"This launch is meant for another address ({params['target_link_uri'][:200]}), "
                f"not this tool's ({launch_url}). The tool's registration in the learning platform "
                "needs its launch URL corrected.",
            )
        now = time.time()
        state, nonce, binding = (secrets.token_urlsafe(24) for _ in range(3))
        login = LtiLogin(state, platform.platform_id, nonce, binding, now + LOGIN_TTL_S, launch_url)
        await self._store.lti.put_login(login, now=now)
        query = {
            "scope": "openid",
            "response_type": "id_token",
            "response_mode": "form_post",
            "prompt": "none",
            "client_id": platform.client_id,
            "redirect_uri": launch_url,
            "state": state,
            "nonce": nonce,
            "login_hint": params["login_hint"],
        }
        if isinstance(params.get("lti_message_hint"), str):
            query["lti_message_hint"] = params["lti_message_hint"]
        separator = "&" if urlsplit(platform.auth_login_url).query else "?"
        auth_url = f"{platform.auth_login_url}{separator}{urlencode(query)}"
        response: Response = RedirectResponse(auth_url, status_code=302)
        if framed(request):  # on to the platform only if this frame keeps our cookies
            response = cookie_check_page(auth_url, new_window_login(params))
        secure = base.startswith("https://")
        cookies = [(COOKIE_PREFIX + state, binding, True), (CHECK_COOKIE, "1", False)]
        for name, value, httponly in cookies:
            response.set_cookie(
                name,
                value,
                max_age=int(LOGIN_TTL_S),
                path="/lti/",
                httponly=httponly,
                secure=secure,
                samesite="none" if secure else "lax",
            )
        return response

    async def _platform_of(self, params: dict[str, Any]) -> LtiPlatform:
        for name in ("iss", "login_hint", "target_link_uri"):
            if not isinstance(params.get(name), str) or not params[name]:
                raise LaunchRefused(f"The login request has no {name}.")
        client_id = params.get("client_id")
        found = [
            p
            for p in await self._store.lti.list_platforms()
            if p.issuer == params["iss"] and (not client_id or p.client_id == client_id)
        ]
        if not found:
            raise LaunchRefused("This learning platform is not registered with the proctoring service.", 403)
        if len(found) > 1:
            raise LaunchRefused(
                "Several registrations share this issuer: the platform must send its client_id."
            )
        deployment = params.get("lti_deployment_id")
        if deployment and deployment not in found[0].deployment_ids:
            raise LaunchRefused(
                "This deployment of the tool is not registered with the proctoring service.", 403
            )
        return found[0]

    # the launch: the platform's form post of an id_token

    async def launch(self, request: Request) -> Response:
        form = await form_fields(request)
        id_token, state = form.get("id_token"), form.get("state")
        if not isinstance(id_token, str) or not isinstance(state, str) or not id_token or not state:
            return refusal(400, "The launch carries no id_token or no state.")
        try:
            platform, launch = await self._verified(request, id_token, state)
        except LaunchRefused as exc:
            log.info("LTI launch refused: %s", exc.message)
            response: Response = refusal(exc.status, exc.message)
        else:
            if launch.message_type == END_ASSESSMENT:
                response = await self._end(platform, launch)
            else:
                response = await self._start(request, platform, launch)
        response.delete_cookie(COOKIE_PREFIX + state, path="/lti/")
        return response

    async def _verified(self, request: Request, id_token: str, state: str) -> tuple[LtiPlatform, Launch]:
        now = time.time()
        login = await self._store.lti.take_login(state, now=now)
        if login is None:
            raise LaunchRefused("This launch is unknown, expired or was used already (state).", 401)
        cookie = request.cookies.get(COOKIE_PREFIX + state, "")
        if not hmac.compare_digest(cookie.encode(), login.binding.encode()):
            raise LaunchRefused(
                "This launch did not start in this browser (state cookie missing). If your course "
                "opened the exam inside its own page, your browser may keep this tool's cookies out "
                "of it: open the exam in a new window.",
                401,
            )
        platform = await self._store.lti.get_platform(login.platform_id)
        if platform is None:
            raise LaunchRefused("This learning platform is no longer registered.", 403)
        claims = await self._decode(platform, id_token)
        check_target(claims, login.target_link_uri)
        launch = read_launch(claims, platform, nonce=login.nonce)
        if not await self._store.dedupe.once(
            f"lti-nonce:{platform.platform_id}:{login.nonce}", now=now, ttl_s=NONCE_TTL_S
        ):
            raise LaunchRefused("This launch was used already (nonce).", 401)
        return platform, launch

    async def _decode(self, platform: LtiPlatform, id_token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError:
            raise LaunchRefused("The id_token is not a JWT.") from None
        if header.get("alg") != ALGORITHM:
            raise LaunchRefused(f"The id_token must be signed with {ALGORITHM}.", 401)
        kid = header.get("kid")
        try:
            key = await self.key_sets.key(platform.jwks_url, kid if isinstance(kid, str) else None)
        except UnknownKey:
            raise LaunchRefused(
                "The id_token is signed with a key the platform does not publish (kid).", 401
            ) from None
        except KeySetUnavailable as exc:
            log.warning("LTI platform %s: %s", platform.platform_id, exc)
            raise LaunchRefused(
                "The platform's keys could not be fetched; try again in a minute.", 502
            ) from None
        try:
            return jwt.decode(
                id_token,
                key,
                algorithms=[ALGORITHM],
                audience=platform.client_id,
                issuer=platform.issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "nonce"]},
            )
        except jwt.ExpiredSignatureError:
            raise LaunchRefused(
                "The launch has expired; open the exam again from your course.", 401
            ) from None
        except jwt.InvalidAudienceError:
            raise LaunchRefused("The launch was not meant for this tool (aud).", 401) from None
        except jwt.InvalidIssuerError:
            raise LaunchRefused("The launch comes from another platform than its login (iss).", 401) from None
        except jwt.InvalidSignatureError:
            raise LaunchRefused("The id_token's signature is not valid.", 401) from None
        except jwt.PyJWTError as exc:
            raise LaunchRefused(f"The id_token is not valid ({type(exc).__name__}).", 401) from None

    async def _start(self, request: Request, platform: LtiPlatform, launch: Launch) -> Response:
        now = time.time()
        event_id = await self._event_for(platform, launch)
        user_id = user_id_for(launch.sub)
        attempt = LtiAttempt(
            platform_id=platform.platform_id,
            event_id=event_id,
            user_id=user_id,
            resource_link=launch.resource_link,
            attempt_number=launch.attempt_number,
            session_data=launch.session_data or "",
            start_assessment_url=launch.start_assessment_url or "",
            deployment_id=launch.deployment_id,
            launched_at=now,
            acs=launch.acs,
            identity=launch.identity,
            sub=launch.sub,
        )
        await self._store.lti.save_attempt(attempt)
        token = mint_session(
            self._settings.hub_secret,
            user_id=user_id,
            event_id=event_id,
            role="candidate",
            now=now,
            ttl_s=min(self._settings.lti_session_ttl_s, self._settings.jwt_max_ttl_s),
            name=display_name(launch.identity),
            rules=self._settings.token_rules,  # the aud and iss an operator requires of every session
        )
        page = self._launch_page.read_text().replace(
            SESSION_META, f'<meta name="ph-session" content="{html.escape(token)}">'
        )
        parts = urlsplit(attempt.start_assessment_url)
        policy = content_security_policy(
            self._settings, request.headers.get("host"), form_targets=(f"{parts.scheme}://{parts.netloc}",)
        )
        return HTMLResponse(page, headers={"Content-Security-Policy": policy, "Cache-Control": "no-store"})

    async def _event_for(self, platform: LtiPlatform, launch: Launch) -> str:
        """The event of the resource link, created from the registration's defaults on its first launch."""
        event_id = event_id_for(platform.platform_id, launch.resource_link_id)
        if await self._store.events.get_event(event_id) is None:
            defaults = dict(platform.event_defaults)
            title = launch.resource_link.get("title")
            name = defaults.pop("name", None) or (title if isinstance(title, str) and title else event_id)
            config = EventConfig(event_id=event_id, name=name[:200], **defaults)
            if await self._store.events.create_event(config):
                self._hub.rooms.request(event_id)
        return event_id

    async def _end(self, platform: LtiPlatform, launch: Launch) -> Response:
        """LtiEndAssessment: the attempt is over; the candidate finishes as with the page's Finish."""
        event_id = event_id_for(platform.platform_id, launch.resource_link_id)
        user_id = user_id_for(launch.sub)
        for attempt in await self._store.lti.attempts(event_id, user_id):
            if attempt.attempt_number == launch.attempt_number and attempt.ended_at is None:
                await self._store.lti.save_attempt(
                    LtiAttempt(**{**attempt.to_dict(), "ended_at": time.time()})
                )
        await self._hub.presence.finished(event_id, user_id)
        return ended_page()

    # LtiStartAssessment, minted here for the launch page (the browser never holds the key)

    async def start_assessment(self, request: Request) -> JSONResponse:
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        try:
            if scheme.lower() != "bearer":
                raise InvalidSession("expected 'Authorization: Bearer <session>'")
            session = verify_session(
                credential.strip(),
                self._settings.hub_secret,
                now=time.time(),
                rules=self._settings.token_rules,
            )
        except InvalidSession as exc:
            raise ApiError(
                401, "unauthenticated", f"invalid session: {exc}", headers={"WWW-Authenticate": "Bearer"}
            ) from None
        if session.role != "candidate":
            raise ApiError(403, "forbidden", "only a candidate session starts an assessment")
        body = await json_body(request) if int(request.headers.get("content-length") or 0) else {}
        verified = isinstance(body, dict) and body.get("verified") is True
        attempts = [
            a for a in await self._store.lti.attempts(session.event_id, session.user_id) if a.ended_at is None
        ]
        if not attempts:
            raise ApiError(404, "not_found", "no open LTI attempt for this session")
        attempt = attempts[-1]
        platform = await self._store.lti.get_platform(attempt.platform_id)
        if platform is None:
            raise ApiError(404, "not_found", "the attempt's platform is no longer registered")
        claims = start_assessment_claims(
            attempt,
            platform,
            now=time.time(),
            nonce=secrets.token_urlsafe(16),
            ttl_s=START_ASSESSMENT_TTL_S,
            verified=verified,
        )
        return JSONResponse(
            {"url": attempt.start_assessment_url, "jwt": self.key.sign(claims)},
            headers={"Cache-Control": "no-store"},
        )
