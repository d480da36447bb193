"""Where a recording's bytes come from: the simulator's file, the recording bucket, or 100ms's presigned
URL, each only as admission.py allows it (the webhook naming them is only the sender's word).

`SourceReader.admit` says which ways to read a source are allowed, or raises `SourceRefused` when none
is; `fetch` reads through them, in that order, and never more than the size cap.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from server.config import Settings
from server.hms.simulator.config import LocalTarget, S3Target
from server.recording.archive.admission import (
    SourcePolicy,
    file_problem,
    over_cap,
    private_allowed,
    s3_problem,
    size_cap,
    url_problem,
)
from server.recording.archive.contract import ArchiveError, SegmentSource, SourceRefused
from server.recording.archive.offload import Offload, S3Access, fetch_to_file, file_location, s3_location


def source_policy(settings: Settings) -> SourcePolicy:
    """The deployment's recording sources: HMS_RECORDING_BUCKET/PREFIX/HOSTS/MAX_BYTES, S3_ENDPOINT_URL.

    `file://` recordings come from ARCHIVE_DIR/HMS_RECORDING_PREFIX (where a simulator writes), unless
    that folder holds (or is inside) the archive's own layout, ARCHIVE_DIR/S3_PREFIX."""
    archive = Path(settings.archive_dir).resolve()
    own = (archive / settings.s3_prefix.strip("/")).resolve()
    folder = (archive / settings.recording_prefix.strip("/")).resolve()
    overlaps = folder.is_relative_to(own) or own.is_relative_to(folder)
    return SourcePolicy(
        bucket=settings.recording_bucket,
        prefix=settings.recording_prefix,
        file_root=None if overlaps else str(folder),
        hosts=settings.hms_recording_hosts,
        s3_endpoint=settings.s3_endpoint_url,
        max_bytes=settings.hms_recording_max_bytes,
    )


def simulator_policy(settings: Settings, storage: S3Target | LocalTarget | None) -> SourcePolicy:
    """In the embedded mode the in-process simulator is 100ms: its own storage is the one source."""
    policy = source_policy(settings)
    if isinstance(storage, S3Target):
        return replace(policy, bucket=storage.bucket, prefix=storage.prefix, file_root=None)
    if isinstance(storage, LocalTarget):
        root = str((Path(storage.root) / storage.prefix.strip("/")).resolve())
        return replace(policy, bucket=None, file_root=root)
    return replace(policy, bucket=None, file_root=None)  # kept in memory: nothing to read


@dataclass(frozen=True)
class Admitted:
    """The allowed ways to read one source, and how many bytes it may have."""

    file: Path | None
    s3: tuple[str, str] | None
    url: str | None
    cap: int


class SourceReader:
    def __init__(self, policy: SourcePolicy, offload: Offload, s3: S3Access | None) -> None:
        self.policy = policy
        self.offload = offload
        self.s3 = s3

    def admit(self, source: SegmentSource, key: str) -> Admitted:
        """The allowed ways to read `source`; SourceRefused (not_allowed) saying why for each when none is."""
        cap = size_cap(self.policy, key, source.size)
        reasons: list[str] = []
        file = s3 = url = None
        for candidate in (source.source_path, source.presigned_url or ""):
            path = file_location(candidate)
            if path is not None and file is None:
                resolved = path.resolve()
                problem = file_problem(self.policy, str(resolved))
                if problem is None:
                    file = resolved
                else:
                    reasons.append(f"{candidate}: {problem}")
        location = s3_location(source.source_path)
        if location is not None:
            problem = s3_problem(self.policy, *location)
            if problem is None:
                s3 = location
            else:
                reasons.append(f"{source.source_path}: {problem}")
        presigned = source.presigned_url or ""
        if presigned.startswith(("http://", "https://")):
            problem = url_problem(self.policy, presigned)
            if problem is None:
                url = presigned
            else:
                reasons.append(f"the presigned URL: {problem}")
        if file is None and s3 is None and url is None:
            if not reasons:
                reasons.append(
                    f"cannot read {source.source_path!r}: expected s3://, file:// or a presigned URL"
                )
            raise SourceRefused(key, "not_allowed", "; ".join(reasons))
        return Admitted(file, s3, url, cap)

    def local_file(self, source: SegmentSource, key: str) -> Path | None:
        """The source's own file if it has an allowed one (checked to exist and to fit the cap)."""
        admitted = self.admit(source, key)
        if admitted.file is None:
            return None
        if not admitted.file.is_file():
            raise ArchiveError(key, f"file source {admitted.file} does not exist")
        size = admitted.file.stat().st_size
        if size > admitted.cap:
            raise over_cap(key, admitted.cap, size)
        return admitted.file

    async def fetch(self, source: SegmentSource, key: str, dest: Path) -> int:
        """Write the recording's bytes to `dest`; returns their size. SourceRefused when no allowed way
        exists (or one is refused while reading), ArchiveError saying every reason when none worked."""
        admitted = self.admit(source, key)
        reasons: list[str] = []
        path = self.local_file(source, key)
        if path is not None:
            await self.offload.run(shutil.copyfile, path, dest)
            return dest.stat().st_size
        if admitted.s3 is not None:
            bucket, object_key = admitted.s3
            if self.s3 is None or not await self.s3.configured():
                reasons.append(
                    f"{source.source_path} is in S3 but S3 is not configured here "
                    "(no AWS credentials; set them and S3_ENDPOINT_URL / S3_REGION)"
                )
            else:
                try:
                    head = await self.s3.head(bucket, object_key)
                    if head is not None:
                        if int(head["ContentLength"]) > admitted.cap:
                            raise over_cap(key, admitted.cap, int(head["ContentLength"]))
                        await self.s3.download(bucket, object_key, dest)
                        return dest.stat().st_size
                    reasons.append(f"{source.source_path} does not exist")
                except SourceRefused:
                    raise
                except Exception as exc:  # any failure: fall back to the presigned URL
                    reasons.append(f"reading {source.source_path} failed: {exc}")
        if admitted.url is not None:
            try:
                return await self.offload.run(
                    fetch_to_file, admitted.url, dest, key=key, cap=admitted.cap, private_ok=self.private_ok
                )
            except SourceRefused:
                raise
            except Exception as exc:
                reasons.append(f"downloading the presigned URL failed: {exc}")
        raise ArchiveError(key, "; ".join(reasons))

    def private_ok(self, host: str, port: int) -> bool:
        return private_allowed(self.policy, host, port)
