"""Held 100ms tokens: one per user and room, shared by every tab and node of that user."""

from __future__ import annotations

from typing import Protocol

from server.store.records import HeldToken


class TokenStore(Protocol):
    async def get_token(self, event_id: str, user_id: str, room_id: str) -> HeldToken | None: ...
    async def swap_token(self, new: HeldToken, *, replaces: str | None) -> HeldToken:
        """Hold `new` unless another token than `replaces` is held; then return that one.

        Two nodes refreshing one user's token at once both get the same winner back."""
