"""LTI Proctoring Services: registered platforms, pending logins, launched attempts and the tool's key.

platforms   one registration per LMS (issuer + client_id), found by id or by issuer
logins      the OIDC login between our redirect and the platform's form post: single use, short-lived
attempts    what a launch said about one attempt (echoed back in LtiStartAssessment, used by ACS later)
tool key    the RSA key the hub signs with when none is configured: generated once, shared by all nodes
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from server.store.records import Record


@dataclass(frozen=True, slots=True)
class LtiPlatform(Record):
    """One LMS registration (`POST /api/v1/lti/platforms`)."""

    platform_id: str
    issuer: str
    client_id: str
    deployment_ids: list[str]
    auth_login_url: str
    auth_token_url: str
    jwks_url: str
    event_defaults: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class LtiLogin(Record):
    """What `/lti/login` promised, kept under its `state` until `/lti/launch` takes it (once)."""

    state: str
    platform_id: str
    nonce: str
    binding: str
    """The value of the state cookie set in the browser that started the login."""
    expires_at: float
    target_link_uri: str = ""
    """What the login was for (one of our launch URLs); the id_token must say the same."""


@dataclass(frozen=True, slots=True)
class LtiAttempt(Record):
    """One proctored attempt as its launch described it."""

    platform_id: str
    event_id: str
    user_id: str
    resource_link: dict[str, Any]
    attempt_number: int
    session_data: str
    start_assessment_url: str
    deployment_id: str
    launched_at: float
    acs: dict[str, Any] | None = None
    identity: dict[str, str] = field(default_factory=dict)
    ended_at: float | None = None
    sub: str = ""
    """The LTI `sub` as the platform sent it (`user_id` is a digest of a long one); ACS names it."""


@dataclass(frozen=True, slots=True)
class AcsCall(Record):
    """One Assessment Control Service call: stored before it is sent, then with its answer."""

    call_id: str
    event_id: str
    user_id: str
    attempt_number: int
    action: str
    body: dict[str, Any]
    created_at: float
    by: str
    state: str = "pending"
    """pending (stored, not answered yet), done (the platform answered 200), failed (it did not)."""
    answer: dict[str, Any] | None = None
    error: str | None = None
    tries: int = 0
    answered_at: float | None = None
    next_try_at: float | None = None
    """When a pending call is sent again (by any node's retry loop)."""


class LtiStore(Protocol):
    async def add_platform(self, platform: LtiPlatform) -> bool:
        """Store a registration; False (nothing written) if its issuer and client_id are registered."""

    async def get_platform(self, platform_id: str) -> LtiPlatform | None: ...
    async def list_platforms(self) -> list[LtiPlatform]:
        """Every registration, oldest first."""

    async def delete_platform(self, platform_id: str) -> bool:
        """False if there was none."""

    async def put_login(self, login: LtiLogin, *, now: float) -> None:
        """Keep a pending login until its `expires_at`."""

    async def take_login(self, state: str, *, now: float) -> LtiLogin | None:
        """The pending login of `state`, removed: a second take (a replay) gets None, as does a late one."""

    async def save_attempt(self, attempt: LtiAttempt) -> None:
        """Store (or replace) the attempt with its (event, user, attempt_number)."""

    async def attempts(self, event_id: str, user_id: str) -> list[LtiAttempt]:
        """A candidate's attempts in the event, by attempt number."""

    async def save_acs_call(self, call: AcsCall) -> None:
        """Store (or replace, by `call_id`) an ACS call of a candidate."""

    async def acs_calls(self, event_id: str, user_id: str) -> list[AcsCall]:
        """A candidate's ACS calls, oldest first."""

    async def pending_acs_calls(self) -> list[AcsCall]:
        """Every call still `pending`, of every candidate, oldest first."""

    async def tool_key(self, generated_pem: str) -> str:
        """The shared tool key: the one stored, else `generated_pem`, stored now (first caller wins)."""
