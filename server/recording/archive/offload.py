"""The archive's blocking I/O behind one seam: boto3, HTTP downloads and files run in a small pool.

`Offload.run(call, ...)` is the only way the archive leaves the event loop. `S3Access` holds the one
boto3 client (made lazily on first use, reused, closed with the archive); credentials come from the
usual AWS chain (environment, shared files, instance role).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import os
import socket
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import httpcore
import httpx

from server.config import Settings
from server.recording.archive.admission import over_cap
from server.recording.archive.contract import SourceRefused

T = TypeVar("T")

WORKERS = 4
HTTP_TIMEOUT = httpx.Timeout(30.0, read=120.0)
CHUNK = 1024 * 1024
MISSING = ("404", "NoSuchKey", "NotFound")


class Offload:
    """A few worker threads for the archive, so a slow copy never holds the event loop."""

    def __init__(self, workers: int = WORKERS) -> None:
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None

    async def run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="proctorhub-archive")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(call, *args, **kwargs))

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


class KeyLocks:
    """One asyncio lock per key in use: two recordings racing for one key on this node take turns."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def s3_location(path: str) -> tuple[str, str] | None:
    """`s3://bucket/key` -> (bucket, key); None for anything else."""
    parts = urlsplit(path)
    key = parts.path.lstrip("/")
    if parts.scheme != "s3" or not parts.netloc or not key:
        return None
    return parts.netloc, key


def file_location(url: str) -> Path | None:
    """`file:///abs/path` (or `file://localhost/...`) -> the absolute path; None for anything else."""
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        return None
    path = Path(url2pathname(unquote(parts.path)))
    return path if path.is_absolute() else None


def is_missing(exc: BaseException) -> bool:
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return str(code) in MISSING


def temp_beside(target: Path) -> Path:
    """An empty temporary file in `target`'s folder (so a rename onto `target` is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    return Path(name)


class PublicOnly(httpcore.SyncBackend):
    """Connects only to public addresses, checked on the addresses it connects to (a name that
    resolves anew between check and connect cannot slip a private one in). `private_ok(host, port)`
    names the one exception (S3_ENDPOINT_URL's host)."""

    def __init__(self, key: str, private_ok: Callable[[str, int], bool]) -> None:
        self._key = key
        self._private_ok = private_ok

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not self._private_ok(host, port):
            private = [a for a in addresses if not ipaddress.ip_address(a.split("%", 1)[0]).is_global]
            if private:
                raise SourceRefused(
                    self._key, "private_address", f"{host} resolves to {', '.join(private)}, not public"
                )
        error: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        raise error or httpcore.ConnectError(f"{host} has no address")


def fetch_to_file(url: str, path: Path, *, key: str, cap: int, private_ok: Callable[[str, int], bool]) -> int:
    """Stream `url` into `path` (blocking: run it through `Offload`); the bytes written. No redirect is
    followed and no more than `cap` bytes are read (SourceRefused); other failures raise."""
    written = 0
    timeout = {"connect": HTTP_TIMEOUT.connect, "read": HTTP_TIMEOUT.read, "write": 30.0, "pool": 30.0}
    with (
        httpcore.ConnectionPool(network_backend=PublicOnly(key, private_ok), retries=0) as pool,
        pool.stream("GET", url, extensions={"timeout": timeout}) as response,
    ):
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers}
        if 300 <= response.status < 400:
            where = headers.get("location", "nowhere")
            raise SourceRefused(key, "redirect", f"the download redirects to {where!r}; not followed")
        if response.status != 200:
            raise ValueError(f"HTTP {response.status} for the presigned URL")
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > cap:
            raise over_cap(key, cap, int(length))
        with path.open("wb") as out:
            for chunk in response.iter_stream():
                written += len(chunk)
                if written > cap:
                    raise over_cap(key, cap, written)
                out.write(chunk)
    return written


class S3Access:
    """One lazily made boto3 S3 client for S3_ENDPOINT_URL / S3_REGION, used only through `offload`."""

    def __init__(self, settings: Settings, offload: Offload) -> None:
        self._settings = settings
        self.offload = offload
        self._client: Any = None
        self._lock = threading.Lock()
        self._configured: bool | None = None

    def client(self) -> Any:
        """The client (blocking the first time: call it inside `offload`)."""
        with self._lock:
            if self._client is None:
                self._client = self._make()
            return self._client

    def _make(self) -> Any:
        import boto3
        from botocore.config import Config

        settings = self._settings
        config = Config(
            region_name=settings.s3_region,
            signature_version="s3v4",
            retries={"mode": "standard", "max_attempts": 5},
            connect_timeout=10,
            read_timeout=60,
            max_pool_connections=16,
            # MinIO and most S3-compatible stores want path-style addressing
            s3={"addressing_style": "path"} if settings.s3_endpoint_url else {},
        )
        return boto3.session.Session().client("s3", endpoint_url=settings.s3_endpoint_url, config=config)

    async def configured(self) -> bool:
        """True if the AWS chain finds credentials (asked once: it may query instance metadata)."""
        if self._configured is None:

            def find() -> bool:
                import boto3

                return boto3.session.Session().get_credentials() is not None

            self._configured = await self.offload.run(find)
        return self._configured

    async def call(self, method: str, **params: Any) -> Any:
        """`client.<method>(**params)` off the event loop."""

        def run() -> Any:
            return getattr(self.client(), method)(**params)

        return await self.offload.run(run)

    async def head(self, bucket: str, key: str) -> dict[str, Any] | None:
        """The object's metadata, or None if it does not exist."""
        from botocore.exceptions import ClientError

        try:
            head: dict[str, Any] = await self.call("head_object", Bucket=bucket, Key=key)
        except ClientError as exc:
            if is_missing(exc):
                return None
            raise
        return head

    async def download(self, bucket: str, key: str, path: Path) -> None:
        await self.offload.run(lambda: self.client().download_file(bucket, key, str(path)))

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
