"""Where a recording's bytes come from: a file, an S3 object, or 100ms's presigned URL.

A `file://` source is accepted only under ARCHIVE_DIR (where the simulator writes): a webhook must not
be able to make the archive publish any other file of the machine.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from server.config import Settings
from server.recording.archive.contract import ArchiveError, SegmentSource
from server.recording.archive.offload import Offload, S3Access, fetch_to_file, file_location, s3_location


class SourceReader:
    def __init__(self, settings: Settings, offload: Offload, s3: S3Access | None) -> None:
        self.root = Path(settings.archive_dir).resolve()
        self.offload = offload
        self.s3 = s3

    def local_file(self, source: SegmentSource, key: str) -> Path | None:
        """The source's file (from its path, else its presigned URL), None if it has no `file://` URL."""
        for url in (source.source_path, source.presigned_url or ""):
            path = file_location(url)
            if path is None:
                continue
            resolved = path.resolve()
            if not resolved.is_relative_to(self.root):
                raise ArchiveError(key, f"file source {url} is outside ARCHIVE_DIR ({self.root})")
            if not resolved.is_file():
                raise ArchiveError(key, f"file source {url} does not exist")
            return resolved
        return None

    def web_url(self, source: SegmentSource) -> str | None:
        url = source.presigned_url
        return url if url and url.startswith(("http://", "https://")) else None

    async def fetch(self, source: SegmentSource, key: str, dest: Path) -> int:
        """Write the recording's bytes to `dest`; returns their size. ArchiveError saying every reason
        when no way to read it worked."""
        reasons: list[str] = []
        path = self.local_file(source, key)
        if path is not None:
            await self.offload.run(shutil.copyfile, path, dest)
            return dest.stat().st_size
        location = s3_location(source.source_path)
        if location is not None:
            if self.s3 is None or not await self.s3.configured():
                reasons.append(
                    f"{source.source_path} is in S3 but S3 is not configured here "
                    "(no AWS credentials; set them and S3_ENDPOINT_URL / S3_REGION)"
                )
            else:
                try:
                    await self.s3.download(*location, dest)
                    return dest.stat().st_size
                except Exception as exc:  # any failure: fall back to the presigned URL
                    reasons.append(f"reading {source.source_path} failed: {exc}")
        url = self.web_url(source)
        if url is not None:
            try:
                return await self.offload.run(fetch_to_file, url, dest)
            except Exception as exc:
                reasons.append(f"downloading the presigned URL failed: {exc}")
        if not reasons:
            reasons.append(f"cannot read {source.source_path!r}: expected s3://, file:// or a presigned URL")
        raise ArchiveError(key, "; ".join(reasons))
