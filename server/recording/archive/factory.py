"""Which archive this hub writes to: S3 when S3_BUCKET is set, else the same layout under ARCHIVE_DIR."""

from __future__ import annotations

from server.config import Settings
from server.recording.archive.contract import Archive


def build_archive(settings: Settings) -> Archive:
    """S3 when S3_BUCKET is set, else the same layout under ARCHIVE_DIR."""
    if settings.s3_bucket:
        from server.recording.archive.s3 import S3Archive

        return S3Archive(settings)
    from server.recording.archive.local import LocalArchive

    return LocalArchive(settings)
