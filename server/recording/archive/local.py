"""`LocalArchive`: the S3 layout under ARCHIVE_DIR, for one-process setups without S3.

Files are placed atomically and never clobbered: the bytes go to a temporary file in the target's
folder, then are hard-linked (or renamed) onto the key. A key that already holds the same bytes is
left alone; one holding another recording sends this one to its alternate key. Downloads are signed
app URLs, `/archive/{key}?exp=<epoch s>&sig=<hex HMAC-SHA256(HUB_SECRET, key + "\\n" + exp)>`, served
by server/api/archive_files.py.
"""

from __future__ import annotations

import filecmp
import hashlib
import hmac
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from server.config import ConfigError, Settings
from server.recording.archive.admission import SourcePolicy
from server.recording.archive.contract import ArchiveError, Segment, SegmentSource, failures_of
from server.recording.archive.layout import dump_manifest, manifest_key, parse_manifest, places
from server.recording.archive.offload import KeyLocks, Offload, S3Access, temp_beside
from server.recording.archive.sources import SourceReader, source_policy

URL_PATH = "/archive/"


def sign(secret: str, key: str, exp: int) -> str:
    return hmac.new(secret.encode(), f"{key}\n{exp}".encode(), hashlib.sha256).hexdigest()


def signature_problem(secret: str, key: str, exp: str | None, sig: str | None, *, now: float) -> str | None:
    """Why a signed archive URL is refused, or None if it is good (pure)."""
    if not exp or not sig or not exp.isdigit() or len(exp) > 12:
        return "missing or malformed exp/sig"
    if not hmac.compare_digest(sig.encode(), sign(secret, key, int(exp)).encode()):
        return "bad signature"
    if int(exp) < now:
        return "link expired"
    return None


def key_is_safe(key: str) -> bool:
    """A relative key of plain segments: no `..`, `.` or empty segment, no leading `/`, `\\` or NUL."""
    if not key or key.startswith("/") or "\\" in key or "\0" in key:
        return False
    return all(part not in ("", ".", "..") for part in key.split("/"))


def place(temp: Path, target: Path) -> bool:
    """Put `temp`'s bytes at `target` unless something is already there; True if placed."""
    try:
        os.link(temp, target)
        return True
    except FileExistsError:
        return False
    except OSError:  # no hard links on this file system: check, then rename
        if target.exists():
            return False
        os.replace(temp, target)
        return True


class LocalArchive:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        policy: SourcePolicy | None = None,
    ) -> None:
        self.root = Path(settings.archive_dir).resolve()
        self.prefix = settings.s3_prefix
        self._secret = settings.hub_secret
        self._clock = clock
        self._offload = Offload()
        self._s3 = S3Access(settings, self._offload)  # only to read s3:// sources, when configured
        self._sources = SourceReader(policy or source_policy(settings), self._offload, self._s3)
        self._locks = KeyLocks()

    async def start(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"Config 'ARCHIVE_DIR' must be a folder, got the file {str(self.root)!r}.")

    async def aclose(self) -> None:
        self._s3.close()
        self._offload.close()

    def file_for(self, key: str) -> Path | None:
        """The file of `key` under the root; None for a key that is unsafe or leads outside it."""
        if not key_is_safe(key):
            return None
        path = (self.root / key).resolve()
        return path if path.is_relative_to(self.root) and path != self.root else None

    def _path(self, key: str) -> Path:
        path = self.file_for(key)
        if path is None:
            raise ArchiveError(key, "not a safe key under ARCHIVE_DIR")
        return path

    # -- segments ---------------------------------------------------------------------------------

    async def store_segment(self, source: SegmentSource) -> Segment:
        keys = places(self.prefix, source)
        self._sources.admit(source, keys[0])  # a refused source never gets as far as the folder
        async with self._locks.hold(keys[0]):
            with failures_of(keys[0], "storing the recording"):
                key, size = await self._store(source, keys)
        return Segment.of(source, key, size)

    async def _store(self, source: SegmentSource, keys: tuple[str, ...]) -> tuple[str, int]:
        file = self._sources.local_file(source, keys[0])
        temp: Path | None = None
        try:
            for key in keys:
                target = self._path(key)
                if await self._offload.run(target.exists):
                    if file is None and temp is None:
                        temp = await self._fetch(source, key, target)
                    ours = file if file is not None else temp
                    if await self._offload.run(filecmp.cmp, ours, target, False):
                        return key, target.stat().st_size
                    continue
                if temp is None:
                    temp = await self._fetch(source, key, target)
                if await self._offload.run(place, temp, target) or await self._offload.run(
                    filecmp.cmp, temp, target, False
                ):
                    return key, target.stat().st_size
        finally:
            if temp is not None:
                temp.unlink(missing_ok=True)
        raise ArchiveError(keys[0], "both the prescribed and the alternate key hold other recordings")

    async def _fetch(self, source: SegmentSource, key: str, target: Path) -> Path:
        temp = await self._offload.run(temp_beside, target)
        try:
            await self._sources.fetch(source, key, temp)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return temp

    # -- uploads of the candidate's page (browser backfill) ----------------------------------------

    async def presign_put(self, key: str, content_type: str, sha256_b64: str, expires_s: int) -> str | None:
        """No bucket: the page uploads through the hub (server/api/backfill.py)."""
        return None

    async def put_upload(self, key: str, chunks: AsyncIterator[bytes], limit: int) -> int | None:
        """Write an upload at `key` (replacing an earlier one); None, and nothing kept, over `limit`."""
        target = self._path(key)
        temp = await self._offload.run(temp_beside, target)
        size = 0
        try:
            with failures_of(key, "storing the upload"):
                handle = await self._offload.run(temp.open, "wb")
                try:
                    async for chunk in chunks:
                        size += len(chunk)
                        if size > limit:
                            return None
                        await self._offload.run(handle.write, chunk)
                finally:
                    await self._offload.run(handle.close)
                await self._offload.run(os.replace, temp, target)
            return size
        finally:
            temp.unlink(missing_ok=True)

    async def read_upload(self, key: str, limit: int) -> tuple[bytes, str | None] | None:
        """Up to `limit` + 1 bytes of `key` (a file keeps no type: the hub checked it on PUT), or None
        when it does not exist."""
        path = self._path(key)

        def read() -> tuple[bytes, str | None] | None:
            try:
                with path.open("rb") as handle:
                    return handle.read(limit + 1), None
            except FileNotFoundError:
                return None

        with failures_of(key, "reading the upload"):
            return await self._offload.run(read)

    async def delete(self, key: str) -> None:
        with failures_of(key, "deleting the upload"):
            await self._offload.run(self._path(key).unlink, True)

    # -- manifests and URLs -----------------------------------------------------------------------

    async def write_manifest(self, event_id: str, candidate_id: str, manifest: dict[str, Any]) -> str:
        key = manifest_key(self.prefix, event_id, candidate_id)
        data = dump_manifest(key, event_id, candidate_id, manifest)
        target = self._path(key)

        def write() -> None:
            temp = temp_beside(target)
            try:
                temp.write_bytes(data)
                os.replace(temp, target)
            finally:
                temp.unlink(missing_ok=True)

        with failures_of(key, "writing the manifest"):
            await self._offload.run(write)
        return key

    async def read_manifest(self, event_id: str, candidate_id: str) -> dict[str, Any] | None:
        key = manifest_key(self.prefix, event_id, candidate_id)
        with failures_of(key, "reading the manifest"):
            try:
                body = await self._offload.run(self._path(key).read_bytes)
            except FileNotFoundError:
                return None
        return parse_manifest(key, body)

    async def url(self, key: str, *, expires_s: int = 3600) -> str:
        exp = int(self._clock()) + expires_s
        return f"{URL_PATH}{quote(key, safe='/~')}?exp={exp}&sig={sign(self._secret, key, exp)}"
