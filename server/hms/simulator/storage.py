"""Where recordings are written: an S3 bucket (boto3), a local folder, or memory.

Storage (protocol)   path(key) -> recording_path;  put(key, body);  presign(key, expires_s)
 ├── S3Storage        s3://bucket/<key>; every boto3 call goes through `_offload` (asyncio.to_thread)
 ├── LocalStorage     file:///<root>/<key>
 └── MemoryStorage    s3://100ms-storage/<key>, objects kept in `objects` ("stored with 100ms")
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from server.hms.simulator.config import LocalTarget, S3Target

T = TypeVar("T")


class Storage(Protocol):
    prefix: str

    def path(self, key: str) -> str: ...

    async def put(self, key: str, body: bytes, content_type: str) -> None: ...

    async def presign(self, key: str, expires_s: int) -> str: ...

    async def aclose(self) -> None: ...


def _join(prefix: str, key: str) -> str:
    return f"{prefix.strip('/')}/{key}" if prefix.strip("/") else key


class S3Storage:
    def __init__(self, target: S3Target) -> None:
        self.target = target
        self.prefix = target.prefix
        self._client: Any = None
        self._lock = asyncio.Lock()

    def _make_client(self) -> Any:
        import boto3  # only S3 mode needs it

        return boto3.client(
            "s3",
            region_name=self.target.region,
            endpoint_url=self.target.endpoint_url,
            aws_access_key_id=self.target.access_key_id,
            aws_secret_access_key=self.target.secret_access_key,
        )

    async def _boto(self) -> Any:
        async with self._lock:
            if self._client is None:
                self._client = await self._offload(self._make_client)
        return self._client

    async def _offload(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """The one seam where blocking boto3 calls leave the event loop."""
        return await asyncio.to_thread(functools.partial(call, *args, **kwargs))

    def key(self, key: str) -> str:
        return _join(self.prefix, key)

    def path(self, key: str) -> str:
        return f"s3://{self.target.bucket}/{self.key(key)}"

    async def put(self, key: str, body: bytes, content_type: str) -> None:
        client = await self._boto()
        await self._offload(
            client.put_object,
            Bucket=self.target.bucket,
            Key=self.key(key),
            Body=body,
            ContentType=content_type,
        )

    async def presign(self, key: str, expires_s: int) -> str:
        client = await self._boto()
        params = {"Bucket": self.target.bucket, "Key": self.key(key)}
        url: str = await self._offload(
            client.generate_presigned_url, "get_object", Params=params, ExpiresIn=expires_s
        )
        return url

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await self._offload(client.close)


class LocalStorage:
    def __init__(self, target: LocalTarget) -> None:
        self.root = Path(target.root).resolve()
        self.prefix = target.prefix

    def file(self, key: str) -> Path:
        return self.root / _join(self.prefix, key)

    def path(self, key: str) -> str:
        return self.file(key).as_uri()

    async def put(self, key: str, body: bytes, content_type: str) -> None:
        target = self.file(key)

        def write() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)

        await asyncio.to_thread(write)

    async def presign(self, key: str, expires_s: int) -> str:
        return self.path(key)

    async def aclose(self) -> None:
        return None


class MemoryStorage:
    def __init__(self) -> None:
        self.prefix = ""
        self.objects: dict[str, bytes] = {}

    def path(self, key: str) -> str:
        return f"s3://100ms-storage/{key}"

    async def put(self, key: str, body: bytes, content_type: str) -> None:
        self.objects[key] = body

    async def presign(self, key: str, expires_s: int) -> str:
        return f"https://100ms-storage.invalid/{key}?X-Expires={expires_s}"

    async def aclose(self) -> None:
        return None


def make_storage(target: S3Target | LocalTarget | None) -> Storage:
    if isinstance(target, S3Target):
        return S3Storage(target)
    if isinstance(target, LocalTarget):
        return LocalStorage(target)
    return MemoryStorage()
