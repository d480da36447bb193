"""LTI registrations, pending logins, attempts and the tool key in memory."""

from __future__ import annotations

from server.store.lti import AcsCall, LtiAttempt, LtiLogin, LtiPlatform


class MemoryLti:
    def __init__(self) -> None:
        self._platforms: dict[str, LtiPlatform] = {}
        self._logins: dict[str, LtiLogin] = {}
        self._attempts: dict[tuple[str, str], dict[int, LtiAttempt]] = {}
        self._tool_key: str | None = None
        self._acs: dict[tuple[str, str], dict[str, AcsCall]] = {}

    async def add_platform(self, platform: LtiPlatform) -> bool:
        pair = (platform.issuer, platform.client_id)
        if any((p.issuer, p.client_id) == pair for p in self._platforms.values()):
            return False
        if platform.platform_id in self._platforms:
            return False
        self._platforms[platform.platform_id] = platform
        return True

    async def get_platform(self, platform_id: str) -> LtiPlatform | None:
        return self._platforms.get(platform_id)

    async def list_platforms(self) -> list[LtiPlatform]:
        return sorted(self._platforms.values(), key=lambda p: (p.created_at, p.platform_id))

    async def delete_platform(self, platform_id: str) -> bool:
        return self._platforms.pop(platform_id, None) is not None

    async def put_login(self, login: LtiLogin, *, now: float) -> None:
        self._logins = {s: held for s, held in self._logins.items() if held.expires_at > now}
        self._logins[login.state] = login

    async def take_login(self, state: str, *, now: float) -> LtiLogin | None:
        login = self._logins.pop(state, None)
        return login if login is not None and login.expires_at > now else None

    async def save_attempt(self, attempt: LtiAttempt) -> None:
        held = self._attempts.setdefault((attempt.event_id, attempt.user_id), {})
        held[attempt.attempt_number] = attempt

    async def attempts(self, event_id: str, user_id: str) -> list[LtiAttempt]:
        held = self._attempts.get((event_id, user_id), {})
        return [held[n] for n in sorted(held)]

    async def save_acs_call(self, call: AcsCall) -> None:
        self._acs.setdefault((call.event_id, call.user_id), {})[call.call_id] = call

    async def acs_calls(self, event_id: str, user_id: str) -> list[AcsCall]:
        held = self._acs.get((event_id, user_id), {}).values()
        return sorted(held, key=lambda c: (c.created_at, c.call_id))

    async def pending_acs_calls(self) -> list[AcsCall]:
        pending = [c for held in self._acs.values() for c in held.values() if c.state == "pending"]
        return sorted(pending, key=lambda c: (c.created_at, c.call_id))

    async def tool_key(self, generated_pem: str) -> str:
        if self._tool_key is None:
            self._tool_key = generated_pem
        return self._tool_key
