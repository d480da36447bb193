"""An LTI Proctoring platform (an LMS) for the tests, as an ASGI app served by uvicorn on loopback.

It plays the platform's half of the flow against the real hub:
- `/jwks`: its public keys (`kid` named); `rotate()` adds a new signing key;
- `/auth`: the OIDC authorization endpoint our login redirects to. It checks the parameters, builds the
  id_token (LtiStartProctoring or LtiEndAssessment) and answers the form post a browser would submit
  to `redirect_uri` (also kept in `last_form` for HTTP-driven tests);
- `/token`: OAuth2 client credentials; verifies our client assertion with the tool's JWKS and grants
  `granted_scope` (the ACS scope unless a test drops it);
- `/acs`: the Assessment Control Service: a bearer token it issued, the vnd content type (406 else), an
  action the launch offered (`acs_actions`); keeps a status per attempt and logs calls in `acs_log`;
- `/start_assessment`: takes the form field `JWT`, verifies it with the tool's JWKS (fetched from the
  hub), checks the echoed claims against what it launched, and records the claims in `started`.
Tests steer the next id_token with `next_claims` (merged in), `next_kid`/`sign_with` (the key).
"""

from __future__ import annotations

import html
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from server.lti.messages import ACS_CONTENT_TYPE, AP, JWT_BEARER, LTI
from server.lti.toolkey import public_jwk

REQUIRED_AUTH = {
    "scope": "openid",
    "response_type": "id_token",
    "response_mode": "form_post",
    "prompt": "none",
}


@dataclass
class Platform:
    client_id: str = "proctorhub-tool"
    deployment_id: str = "deployment-1"
    base: str = ""
    tool_jwks_url: str = ""
    tool_jwks: dict[str, Any] | None = None
    """The tool's keys as the platform last cached them: used instead of `tool_jwks_url` when set."""
    tool_launch_url: str = ""
    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    signing_kid: str = ""
    message_type: str = "LtiStartProctoring"
    attempt_number: Any = 1
    next_claims: dict[str, Any] = field(default_factory=dict)
    sign_with: rsa.RSAPrivateKey | None = None
    next_kid: str | None = None
    last_form: dict[str, str] = field(default_factory=dict)
    auth_requests: list[dict[str, str]] = field(default_factory=list)
    session_data: str = field(default_factory=lambda: secrets.token_urlsafe(16) + ".opaque/=")
    started: list[dict[str, Any]] = field(default_factory=list)
    acs_actions: list[str] = field(default_factory=lambda: ["flag", "terminate", "update"])
    granted_scope: str = "https://purl.imsglobal.org/spec/lti-ap/scope/control.all"
    tokens: set[str] = field(default_factory=set)
    acs_log: list[dict[str, Any]] = field(default_factory=list)
    acs_received_at: list[float] = field(default_factory=list)
    """When each `acs_log` entry arrived (time.time()), for the figures a test prints."""
    acs_fail_first: int = 0
    tenant: str = field(default_factory=lambda: secrets.token_hex(4))
    """Part of the issuer: a platform served later on a port an earlier one used (tests share a hub) is
    another platform, not a second registration of the first."""
    status: dict[int, dict[str, Any]] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    user: dict[str, Any] = field(
        default_factory=lambda: {"sub": "student-42", "given_name": "Ada", "family_name": "Lovelace"}
    )
    resource_link: dict[str, Any] = field(
        default_factory=lambda: {"id": "quiz-7", "title": "Algebra final", "description": "120 minutes"}
    )

    def __post_init__(self) -> None:
        if not self.keys:
            self.rotate()

    def rotate(self) -> str:
        kid = f"platform-key-{len(self.keys) + 1}"
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.signing_kid = kid
        return kid

    @property
    def issuer(self) -> str:
        return f"{self.base}/lms/{self.tenant}"

    def registration(self, **overrides: Any) -> dict[str, Any]:
        """The body of `POST /api/v1/lti/platforms` for this platform."""
        return {
            "issuer": self.issuer,
            "client_id": self.client_id,
            "deployment_ids": [self.deployment_id],
            "auth_login_url": f"{self.base}/auth",
            "auth_token_url": f"{self.base}/token",
            "jwks_url": f"{self.base}/jwks",
            "event_defaults": {"room_size": 4, "token_ttl_s": 600},
            **overrides,
        }

    def login_params(self, **overrides: str) -> dict[str, str]:
        """What the platform sends to the tool's login URL."""
        return {
            "iss": self.issuer,
            "login_hint": "hint-" + self.user["sub"],
            "target_link_uri": self.tool_launch_url,
            "lti_message_hint": "message-hint-1",
            "lti_deployment_id": self.deployment_id,
            "client_id": self.client_id,
            **overrides,
        }

    async def register(self, hub_url: str, api_key: str) -> dict[str, Any]:
        """Register with the hub through its API; learn the tool's URLs from the answer."""
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"{hub_url}/api/v1/lti/platforms",
                json=self.registration(),
                headers={"Authorization": f"Bearer {api_key}"},
            )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        self.tool_jwks_url = body["tool"]["jwks_url"]
        self.tool_launch_url = body["tool"]["launch_url"]
        return body

    def id_token_claims(self, nonce: str) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            **self.user,
            LTI + "message_type": self.message_type,
            LTI + "target_link_uri": self.tool_launch_url,
            LTI + "version": "1.3.0",
            LTI + "deployment_id": self.deployment_id,
            LTI + "roles": ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"],
            LTI + "resource_link": self.resource_link,
            AP + "attempt_number": self.attempt_number,
            AP + "session_data": self.session_data,
            AP + "start_assessment_url": f"{self.base}/start_assessment",
            AP + "acs": {"assessment_control_url": f"{self.base}/acs", "actions": self.acs_actions},
        }
        claims.update(self.next_claims)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(self, claims: dict[str, Any]) -> str:
        key = self.sign_with or self.keys[self.signing_kid]
        kid = self.next_kid or self.signing_kid
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})

    async def jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [public_jwk(k.public_key(), kid) for kid, k in self.keys.items()]})

    async def auth(self, request: Request) -> Response:
        params = dict(request.query_params)
        self.auth_requests.append(params)
        for name, value in REQUIRED_AUTH.items():
            if params.get(name) != value:
                return JSONResponse({"error": "invalid_request", "param": name}, status_code=400)
        if params.get("client_id") != self.client_id or params.get("redirect_uri") != self.tool_launch_url:
            return JSONResponse({"error": "invalid_request", "param": "redirect_uri"}, status_code=400)
        if not params.get("state") or not params.get("nonce"):
            return JSONResponse({"error": "invalid_request", "param": "state"}, status_code=400)
        self.last_form = {
            "id_token": self.sign(self.id_token_claims(params["nonce"])),
            "state": params["state"],
        }
        inputs = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(value)}">'
            for name, value in self.last_form.items()
        )
        page = (
            f'<!doctype html><form id="f" method="post" action="{html.escape(self.tool_launch_url)}">'
            f"{inputs}</form>"
            '<script>document.getElementById("f").submit()</script>'
        )
        return HTMLResponse(page)

    async def start_assessment(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        token = form.get("JWT")
        try:
            claims = await self.verify_tool_jwt(str(token))
        except (jwt.PyJWTError, AssertionError, httpx.HTTPError) as exc:
            self.refused.append(f"{type(exc).__name__}: {exc}")
            return HTMLResponse("refused", status_code=400)
        self.started.append(claims)
        return HTMLResponse("<!doctype html><h1 id='exam'>The assessment has started</h1>")

    async def tool_key(self, token: str) -> jwt.PyJWK:
        if self.tool_jwks is not None:
            keys = self.tool_jwks["keys"]
        else:
            async with httpx.AsyncClient() as client:
                keys = (await client.get(self.tool_jwks_url)).json()["keys"]
        kid = jwt.get_unverified_header(token)["kid"]
        return jwt.PyJWK.from_dict(next(k for k in keys if k["kid"] == kid))

    async def token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        if form.get("grant_type") != "client_credentials" or form.get("client_assertion_type") != JWT_BEARER:
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        assertion = form.get("client_assertion", "")
        try:
            claims = jwt.decode(
                assertion,
                await self.tool_key(assertion),
                algorithms=["RS256"],
                audience=f"{self.base}/token",
                issuer=self.client_id,
                options={"require": ["exp", "iat", "jti", "sub"]},
            )
            assert claims["sub"] == self.client_id
        except (jwt.PyJWTError, AssertionError, StopIteration, httpx.HTTPError) as exc:
            self.refused.append(f"token: {type(exc).__name__}: {exc}")
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        token = secrets.token_urlsafe(16)
        self.tokens.add(token)
        return JSONResponse(
            {"access_token": token, "token_type": "bearer", "expires_in": 3600, "scope": self.granted_scope}
        )

    async def acs(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token not in self.tokens:
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        if request.headers.get("content-type") != ACS_CONTENT_TYPE:
            return JSONResponse({"error": "not acceptable"}, status_code=406)
        body = json.loads(await request.body())
        self.acs_log.append(body)
        self.acs_received_at.append(time.time())
        if self.acs_fail_first > 0:
            self.acs_fail_first -= 1
            return JSONResponse({"error": "busy"}, status_code=503)
        required = ("user", "resource_link", "attempt_number", "action", "incident_time")
        if any(name not in body for name in required) or body["action"] not in self.acs_actions:
            return JSONResponse({"error": "bad request"}, status_code=400)
        attempt = self.status.setdefault(body["attempt_number"], {"status": "running"})
        if body["action"] == "terminate":
            attempt["status"] = "terminated"
        if body["action"] == "update":
            attempt["extra_time"] = attempt.get("extra_time", 0) + body["extra_time"]
        return JSONResponse(dict(attempt), media_type=ACS_CONTENT_TYPE)

    async def verify_tool_jwt(self, token: str) -> dict[str, Any]:
        """What a platform does with LtiStartAssessment: the tool's key by kid, then the echoed claims."""
        claims: dict[str, Any] = jwt.decode(
            token,
            await self.tool_key(token),
            algorithms=["RS256"],
            audience=self.issuer,
            issuer=self.client_id,
            options={"require": ["exp", "iat", "nonce"]},
        )
        assert claims[LTI + "message_type"] == "LtiStartAssessment"
        assert claims[LTI + "version"] == "1.3.0"
        assert claims[LTI + "deployment_id"] == self.deployment_id
        assert claims[LTI + "resource_link"]["id"] == self.resource_link["id"]
        assert claims[AP + "session_data"] == self.session_data
        assert claims[AP + "attempt_number"] == int(self.attempt_number)
        return claims

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/jwks", self.jwks, methods=["GET"]),
                Route("/auth", self.auth, methods=["GET", "POST"]),
                Route("/start_assessment", self.start_assessment, methods=["POST"]),
                Route("/token", self.token, methods=["POST"]),
                Route("/acs", self.acs, methods=["POST"]),
                Route("/favicon.ico", lambda request: Response(status_code=204)),  # for the browser test
            ]
        )
