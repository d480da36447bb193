"""`S3Archive`: recordings copied server-side into S3_BUCKET in the prescribed layout.

A source in a bucket this client can read is copied by S3 itself (`copy_object`; a managed multipart
copy above 5 GB); a `file://` source is uploaded; a source only reachable by its presigned URL is
streamed down to a temporary file and uploaded. Each object carries the digest of its recording's
identity in its metadata, so a second store is a no-op and two recordings never overwrite each other.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path
from typing import Any

from server.config import Settings
from server.recording.archive.admission import SourcePolicy, over_cap
from server.recording.archive.contract import ArchiveError, Segment, SegmentSource, failures_of
from server.recording.archive.layout import (
    content_type,
    dump_manifest,
    manifest_key,
    parse_manifest,
    places,
    served_inline,
    serving_headers,
)
from server.recording.archive.offload import KeyLocks, Offload, S3Access, is_missing
from server.recording.archive.sources import SourceReader, source_policy

log = logging.getLogger("proctorhub.recording.archive")

IDENTITY = "proctorhub-recording"  # object metadata: sha256 of the recording's identity
COPY_OBJECT_LIMIT = 5 * 1024**3  # larger objects cannot be copied by one copy_object


def identity_digest(source: SegmentSource) -> str:
    return hashlib.sha256(source.identity.encode("utf-8", "surrogatepass")).hexdigest()


class S3Archive:
    def __init__(
        self,
        settings: Settings,
        *,
        copy_object_limit: int = COPY_OBJECT_LIMIT,
        policy: SourcePolicy | None = None,
    ) -> None:
        if not settings.s3_bucket:
            raise ValueError("S3Archive needs S3_BUCKET")
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix
        self.copy_object_limit = copy_object_limit
        self._offload = Offload()
        self._s3 = S3Access(settings, self._offload)
        self._sources = SourceReader(policy or source_policy(settings), self._offload, self._s3)
        self._locks = KeyLocks()

    async def start(self) -> None:
        return None  # the client is made on first use: start-up never waits for S3

    async def aclose(self) -> None:
        self._s3.close()
        self._offload.close()

    # -- segments ---------------------------------------------------------------------------------

    async def store_segment(self, source: SegmentSource) -> Segment:
        primary, alternate = places(self.prefix, source)
        self._sources.admit(source, primary)  # a refused source never gets as far as the bucket
        async with self._locks.hold(primary):
            for key in (primary, alternate):
                with failures_of(key, "storing the recording"):
                    size = await self._store_at(source, key)
                if size is not None:
                    return Segment.of(source, key, size)
                log.warning("archive key %s holds another recording; using the alternate key", key)
        raise ArchiveError(primary, "both the prescribed and the alternate key hold other recordings")

    async def _store_at(self, source: SegmentSource, key: str) -> int | None:
        """The stored size once `key` holds this recording; None if it holds another one."""
        head = await self._s3.head(self.bucket, key)
        if head is not None:
            stored = head.get("Metadata", {}).get(IDENTITY)
            same = stored == identity_digest(source) if stored else head["ContentLength"] == source.size
            return int(head["ContentLength"]) if same else None
        return await self._put(source, key)

    def _extra(self, source: SegmentSource, key: str) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "ContentType": content_type(key),
            "Metadata": {IDENTITY: identity_digest(source)},
        }
        if not served_inline(key):  # the bucket's origin shows it in place only if it is a recording
            extra["ContentDisposition"] = serving_headers(key)["Content-Disposition"]
        return extra

    async def _put(self, source: SegmentSource, key: str) -> int:
        extra = self._extra(source, key)
        admitted = self._sources.admit(source, key)
        if admitted.s3 is not None:
            size = await self._copy(admitted.s3, key, extra, admitted.cap)
            if size is not None:
                return size
        path = self._sources.local_file(source, key)
        if path is not None:
            return await self._upload(path, key, extra)
        with tempfile.TemporaryDirectory(prefix="proctorhub-archive-") as folder:
            temp = Path(folder) / "recording"
            await self._sources.fetch(source, key, temp)
            return await self._upload(temp, key, extra)

    async def _copy(self, location: tuple[str, str], key: str, extra: dict[str, Any], cap: int) -> int | None:
        """Server-side copy; None if this client cannot read the source (then the caller downloads it)."""
        bucket, source_key = location
        try:
            head = await self._s3.head(bucket, source_key)
        except Exception as exc:
            log.info("s3://%s/%s is not readable here (%s); downloading it instead", bucket, source_key, exc)
            return None
        if head is None:
            log.info("s3://%s/%s does not exist here; downloading it instead", bucket, source_key)
            return None
        size = int(head["ContentLength"])
        if size > cap:
            raise over_cap(key, cap, size)
        copy_source = {"Bucket": bucket, "Key": source_key}
        if size <= self.copy_object_limit:
            await self._s3.call(
                "copy_object",
                CopySource=copy_source,
                Bucket=self.bucket,
                Key=key,
                MetadataDirective="REPLACE",
                **extra,
            )
        else:
            await self._managed_copy(copy_source, key, extra)
        return size

    async def _managed_copy(self, copy_source: dict[str, str], key: str, extra: dict[str, Any]) -> None:
        from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped]

        part = max(self.copy_object_limit // 8, 8 * 1024**2)
        config = TransferConfig(multipart_threshold=self.copy_object_limit, multipart_chunksize=part)
        client = await self._offload.run(self._s3.client)
        await self._offload.run(
            client.copy,
            copy_source,
            self.bucket,
            key,
            ExtraArgs={**extra, "MetadataDirective": "REPLACE"},
            Config=config,
        )

    async def _upload(self, path: Path, key: str, extra: dict[str, Any]) -> int:
        client = await self._offload.run(self._s3.client)
        await self._offload.run(client.upload_file, str(path), self.bucket, key, ExtraArgs=extra)
        return path.stat().st_size

    # -- uploads of the candidate's page (browser backfill) ----------------------------------------

    async def presign_put(self, key: str, content_type: str, sha256_b64: str, expires_s: int) -> str | None:
        """A presigned PUT of `key` that carries the type and the checksum (S3 checks the bytes)."""
        params = {
            "Bucket": self.bucket,
            "Key": key,
            "ContentType": content_type,
            "ChecksumSHA256": sha256_b64,
        }
        with failures_of(key, "presigning the upload"):
            url: str = await self._s3.call(
                "generate_presigned_url", ClientMethod="put_object", Params=params, ExpiresIn=expires_s
            )
        return url

    async def read_upload(self, key: str, limit: int) -> tuple[bytes, str | None] | None:
        """Up to `limit` + 1 bytes of `key` and its content type, or None when it does not exist."""
        with failures_of(key, "reading the upload"):
            try:
                answer = await self._s3.call(
                    "get_object", Bucket=self.bucket, Key=key, Range=f"bytes=0-{limit}"
                )
            except Exception as exc:
                if is_missing(exc):
                    return None
                raise
            body: bytes = await self._offload.run(answer["Body"].read)
        return body, answer.get("ContentType")

    async def delete(self, key: str) -> None:
        with failures_of(key, "deleting the upload"):
            await self._s3.call("delete_object", Bucket=self.bucket, Key=key)

    # -- manifests and URLs -----------------------------------------------------------------------

    async def write_manifest(self, event_id: str, candidate_id: str, manifest: dict[str, Any]) -> str:
        key = manifest_key(self.prefix, event_id, candidate_id)
        data = dump_manifest(key, event_id, candidate_id, manifest)
        with failures_of(key, "writing the manifest"):
            await self._s3.call(
                "put_object", Bucket=self.bucket, Key=key, Body=data, ContentType="application/json"
            )
        return key

    async def read_manifest(self, event_id: str, candidate_id: str) -> dict[str, Any] | None:
        key = manifest_key(self.prefix, event_id, candidate_id)
        with failures_of(key, "reading the manifest"):
            try:
                answer = await self._s3.call("get_object", Bucket=self.bucket, Key=key)
            except Exception as exc:
                if is_missing(exc):
                    return None
                raise
            body = await self._offload.run(answer["Body"].read)
        return parse_manifest(key, body)

    async def url(self, key: str, *, expires_s: int = 3600) -> str:
        params = {"Bucket": self.bucket, "Key": key}
        with failures_of(key, "presigning"):  # no credentials, a bad endpoint
            url: str = await self._s3.call(
                "generate_presigned_url", ClientMethod="get_object", Params=params, ExpiresIn=expires_s
            )
        return url
