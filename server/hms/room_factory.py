"""Rooms for the hub, created through the 100ms REST client with the configured template and storage."""

from __future__ import annotations

from server.config import Settings
from server.hms.client import HmsClient, recording_info_for_s3


class HmsRoomFactory:
    """The `RoomFactory` of `allocation/service.py` on the real API (or the simulator's)."""

    def __init__(self, client: HmsClient, settings: Settings) -> None:
        self._client = client
        self._settings = settings

    async def create_room(self, name: str, description: str) -> str:
        settings = self._settings
        recording = None
        if settings.s3_bucket:
            recording = recording_info_for_s3(settings.s3_bucket, settings.s3_prefix, settings.s3_region)
        room = await self._client.create_room(
            name,
            description=description,
            template_id=settings.hms_template_id,
            region=None if settings.hms_region == "auto" else settings.hms_region,
            recording_info=recording,
        )
        return room.id

    async def disable_room(self, room_id: str) -> None:
        await self._client.disable_room(room_id)
