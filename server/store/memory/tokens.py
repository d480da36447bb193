"""Held 100ms tokens in memory."""

from __future__ import annotations

from server.store.records import HeldToken


class MemoryTokens:
    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str, str], HeldToken] = {}

    async def get_token(self, event_id: str, user_id: str, room_id: str) -> HeldToken | None:
        return self._tokens.get((event_id, user_id, room_id))

    async def swap_token(self, new: HeldToken, *, replaces: str | None) -> HeldToken:
        key = (new.event_id, new.user_id, new.room_id)
        held = self._tokens.get(key)
        if held is not None and held.jti != replaces:
            return held
        self._tokens[key] = new
        return new
