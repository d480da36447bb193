"""Which archive this hub writes to: S3 when S3_BUCKET is set, else the same layout under ARCHIVE_DIR."""

from __future__ import annotations

from server.config import Settings
from server.recording.archive.admission import SourcePolicy
from server.recording.archive.contract import Archive


def build_archive(settings: Settings, policy: SourcePolicy | None = None) -> Archive:
    """S3 when S3_BUCKET is set, else the same layout under ARCHIVE_DIR; reading only the recording
    sources `policy` admits (by default the settings': sources.source_policy)."""
    if settings.s3_bucket:
        from server.recording.archive.s3 import S3Archive

        return S3Archive(settings, policy=policy)
    from server.recording.archive.local import LocalArchive

    return LocalArchive(settings, policy=policy)
