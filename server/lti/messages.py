"""LTI Proctoring messages as claims (pure): what a launch's id_token must hold, and the
LtiStartAssessment we send back. The signature, `exp`, `iat`, `iss` and `aud` are checked by the
caller with PyJWT before `read_launch` sees the claims.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from server.store.lti import LtiAttempt, LtiPlatform

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
AP = "https://purl.imsglobal.org/spec/lti-ap/claim/"
VERSION = "1.3.0"
START_PROCTORING = "LtiStartProctoring"
END_ASSESSMENT = "LtiEndAssessment"
START_ASSESSMENT = "LtiStartAssessment"
MESSAGE_TYPES = (START_PROCTORING, END_ASSESSMENT)
IDENTITY_CLAIMS = ("given_name", "middle_name", "family_name", "name")
_SAFE_ID = re.compile(r"[A-Za-z0-9._-]{1,80}")
MAX_SUB = 128


class LaunchRefused(Exception):
    """A launch we do not accept; the message is shown to the person (no secrets in it)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Launch:
    """What a valid LtiStartProctoring or LtiEndAssessment says."""

    message_type: str
    deployment_id: str
    sub: str
    resource_link: dict[str, Any]
    attempt_number: int
    session_data: str | None
    start_assessment_url: str | None
    acs: dict[str, Any] | None
    identity: dict[str, str] = field(default_factory=dict)

    @property
    def resource_link_id(self) -> str:
        return str(self.resource_link["id"])


def _string(claims: dict[str, Any], name: str, label: str, maximum: int = 4096) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not 1 <= len(value) <= maximum:
        raise LaunchRefused(f"The launch has no valid {label}.")
    return value


def attempt_number(value: object) -> int:
    """An integer from 1, also when a platform sends it as a numeric string (the reference one does)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1_000_000:
        raise LaunchRefused("The launch has no valid attempt number.")
    return value


def same_launch_url(uri: str, launch_url: str) -> bool:
    """Whether `uri` names our launch URL: same scheme, host (any case), port and path (a trailing
    slash aside); a query or fragment some platforms add to route messages is allowed."""
    a, b = urlsplit(uri.strip()), urlsplit(launch_url)
    return (
        a.scheme.lower() == b.scheme.lower()
        and a.netloc.lower() == b.netloc.lower()
        and a.path.rstrip("/") == b.path.rstrip("/")
    )


def check_target(claims: dict[str, Any], login_target: str) -> None:
    """The id_token's `target_link_uri`, when it has one, must be the one its login was for."""
    target = claims.get(LTI + "target_link_uri")
    if target is None or not login_target:
        return
    if not isinstance(target, str) or not same_launch_url(target, login_target):
        raise LaunchRefused("The launch was meant for another tool's address (target_link_uri).")


def check_audience(claims: dict[str, Any], client_id: str) -> None:
    """`aud` may be a list (PyJWT checked that it holds our client_id): then `azp` must be ours."""
    aud = claims.get("aud")
    azp = claims.get("azp")
    if (isinstance(aud, list) and len(aud) > 1 and azp is None) or (azp is not None and azp != client_id):
        raise LaunchRefused("The launch was not meant for this tool (azp).", 401)


def read_launch(claims: dict[str, Any], platform: LtiPlatform, *, nonce: str) -> Launch:
    """The launch the claims describe, or LaunchRefused saying what is wrong."""
    check_audience(claims, platform.client_id)
    if claims.get("nonce") != nonce:
        raise LaunchRefused("The launch does not belong to this login (nonce).", 401)
    message_type = claims.get(LTI + "message_type")
    if message_type not in MESSAGE_TYPES:
        raise LaunchRefused(f"This tool answers proctoring launches, not {str(message_type)[:64]!r}.")
    if claims.get(LTI + "version") != VERSION:
        raise LaunchRefused(f"This tool speaks LTI {VERSION}.")
    deployment_id = _string(claims, LTI + "deployment_id", "deployment id", 255)
    if deployment_id not in platform.deployment_ids:
        raise LaunchRefused("This deployment of the tool is not registered with the proctoring service.", 403)
    sub = _string(claims, "sub", "user (sub)", 255)
    link = claims.get(LTI + "resource_link")
    if not isinstance(link, dict) or not isinstance(link.get("id"), str) or not link["id"]:
        raise LaunchRefused("The launch has no valid resource link.")
    number = attempt_number(claims.get(AP + "attempt_number"))
    starting = message_type == START_PROCTORING
    session_data = claims.get(AP + "session_data")
    if starting and not isinstance(session_data, str):
        raise LaunchRefused("The launch has no session data.")
    start_url = claims.get(AP + "start_assessment_url")
    if starting and (not isinstance(start_url, str) or not start_url.startswith(("https://", "http://"))):
        raise LaunchRefused("The launch has no valid start assessment URL.")
    acs = claims.get(AP + "acs")
    if not (isinstance(acs, dict) and isinstance(acs.get("assessment_control_url"), str)):
        acs = None
    identity = {name: claims[name] for name in IDENTITY_CLAIMS if isinstance(claims.get(name), str)}
    return Launch(
        message_type=message_type,
        deployment_id=deployment_id,
        sub=sub,
        resource_link=link,
        attempt_number=number,
        session_data=session_data if isinstance(session_data, str) else None,
        start_assessment_url=start_url if isinstance(start_url, str) else None,
        acs=acs,
        identity=identity,
    )


def _safe(value: str) -> str:
    """`value` when it is a short id of safe characters, else a digest of it (ids live in keys and URLs)."""
    if _SAFE_ID.fullmatch(value):
        return value
    return "h" + hashlib.sha256(value.encode()).hexdigest()[:40]


def event_id_for(platform_id: str, resource_link_id: str) -> str:
    return f"lti-{platform_id}-{_safe(resource_link_id)}"


def user_id_for(sub: str) -> str:
    """The candidate's id: the LTI `sub` itself when it fits a session's user id."""
    return sub if len(sub) <= MAX_SUB else "h" + hashlib.sha256(sub.encode()).hexdigest()[:40]


def display_name(identity: dict[str, str]) -> str | None:
    if identity.get("name"):
        return identity["name"][:200]
    parts = [identity.get(n, "") for n in ("given_name", "middle_name", "family_name")]
    joined = " ".join(p for p in parts if p)
    return joined[:200] or None


def start_assessment_claims(
    attempt: LtiAttempt, platform: LtiPlatform, *, now: float, nonce: str, ttl_s: float, verified: bool
) -> dict[str, Any]:
    """LtiStartAssessment: who we are (iss = our client_id) to whom (aud = the platform), echoing the
    launch's resource link, session data and attempt number unchanged."""
    claims: dict[str, Any] = {
        "iss": platform.client_id,
        "aud": platform.issuer,
        "iat": int(now),
        "exp": int(now + ttl_s),
        "nonce": nonce,
        LTI + "message_type": START_ASSESSMENT,
        LTI + "version": VERSION,
        LTI + "deployment_id": attempt.deployment_id,
        LTI + "resource_link": attempt.resource_link,
        AP + "session_data": attempt.session_data,
        AP + "attempt_number": attempt.attempt_number,
        AP + "end_assessment_return": True,
    }
    if verified and attempt.identity:
        claims[AP + "verified_user"] = dict(attempt.identity)
    return claims


# Assessment Control Service

ACS_SCOPE = "https://purl.imsglobal.org/spec/lti-ap/scope/control.all"
ACS_CONTENT_TYPE = "application/vnd.ims.lti-ap.v1.control+json"
ACS_ACTIONS = ("pause", "resume", "terminate", "update", "flag")
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class AcsRefused(Exception):
    """An ACS call we will not send; the message says why."""


@dataclass(frozen=True)
class AcsRequest:
    """What a proctor (or a rule) asks the platform to do to an attempt."""

    action: str
    reason_code: str | None = None
    reason_msg: str | None = None
    incident_severity: float | None = None
    extra_time: int | None = None
    at: float | None = None
    """When it happened (epoch seconds), for `incident_time`; None: when the call is made."""


def client_assertion_claims(platform: LtiPlatform, *, now: float, jti: str) -> dict[str, Any]:
    """The JWT that authenticates us at the platform's token URL (RFC 7523): we are issuer and subject."""
    return {
        "iss": platform.client_id,
        "sub": platform.client_id,
        "aud": platform.auth_token_url,
        "iat": int(now),
        "exp": int(now + 300),
        "jti": jti,
    }


def acs_body(
    attempt: LtiAttempt, platform: LtiPlatform, request: AcsRequest, *, incident_time: str
) -> dict[str, Any]:
    """The control request for one attempt; refused when the launch did not offer the action."""
    offered = (attempt.acs or {}).get("actions")
    if attempt.acs is None or not isinstance(offered, list):
        raise AcsRefused("the platform offered no Assessment Control Service for this attempt")
    if request.action not in offered:
        raise AcsRefused(
            f"the platform does not accept {request.action!r} for this attempt (it offers {offered})"
        )
    if request.action == "update" and request.extra_time is None:
        raise AcsRefused("'update' needs extra_time")
    link = {k: v for k, v in attempt.resource_link.items() if k in ("id", "title", "description")}
    body: dict[str, Any] = {
        "user": {"iss": platform.issuer, "sub": attempt.sub or attempt.user_id},
        "resource_link": link,
        "attempt_number": attempt.attempt_number,
        "action": request.action,
        "incident_time": incident_time,
    }
    optional = {
        "incident_severity": request.incident_severity,
        "reason_code": request.reason_code,
        "reason_msg": request.reason_msg,
        "extra_time": request.extra_time,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body
