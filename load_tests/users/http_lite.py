"""A small keep-alive HTTP/1.1 JSON client for the media plane calls of thousands of simulated users.

One `HttpPool` per worker and host: up to `size` idle connections reused, JSON bodies, answers
with Content-Length or chunked bodies. It talks only to the base URL it was made with (no
redirects followed, no proxies from the environment), which keeps the tester on its targets.
httpx would do, at several times the CPU per call; at 30,000 calls in an exam that matters here.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any
from urllib.parse import urlsplit

import orjson


class HttpError(Exception):
    """The call did not get an answer (connection refused, reset, timeout, bad answer)."""


class HttpPool:
    def __init__(self, base_url: str, *, size: int = 32, timeout: float = 15.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.host_header = parts.netloc
        self.timeout = timeout
        self.size = size
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while self._idle:
            reader, writer = self._idle.pop()
            if not writer.is_closing() and not reader.at_eof():
                return reader, writer
            writer.close()
        return await asyncio.open_connection(self.host, self.port, ssl=self.ssl, limit=1 << 20)

    async def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        *,
        content: bytes | None = None,
    ) -> tuple[int, Any]:
        """(status, decoded JSON or the text) of one call; HttpError if no answer came. `content`:
        raw bytes sent as they are (their Content-Type among `headers`) instead of a JSON `body`."""
        payload = orjson.dumps(body) if body is not None else b""
        head = [
            f"{method} {self.prefix}{path} HTTP/1.1",
            f"Host: {self.host_header}",
            "Connection: keep-alive",
        ]
        if content is not None:
            payload = content
            head.append(f"Content-Length: {len(payload)}")
        elif body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        elif method != "GET":
            head.append("Content-Length: 0")
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        raw = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
        for attempt in (0, 1):  # a reused connection may have been closed by the server meanwhile
            try:
                reader, writer = await self._connection()
            except OSError as exc:
                raise HttpError(f"cannot connect to {self.host}:{self.port}: {exc}") from None
            try:
                async with asyncio.timeout(self.timeout):
                    writer.write(raw)
                    status, keep, data = await _answer(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError) as exc:
                writer.close()
                if attempt == 0 and not isinstance(exc, TimeoutError):
                    continue
                raise HttpError(f"{method} {path}: {type(exc).__name__}: {exc}") from None
            if keep and len(self._idle) < self.size:
                self._idle.append((reader, writer))
            else:
                writer.close()
            return status, _decode(data)
        raise HttpError(f"{method} {path}: no answer")

    async def post(self, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        return await self.request("POST", path, body if body is not None else {})

    async def aclose(self) -> None:
        for _, writer in self._idle:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        self._idle = []


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    keep = fields.get("connection", "").lower() != "close"
    if fields.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            chunks.append(chunk[:-2])
        return status, keep, b"".join(chunks)
    length = fields.get("content-length")
    if length is None:
        return status, False, await reader.read()
    return status, keep, await reader.readexactly(int(length))


def _decode(data: bytes) -> Any:
    try:
        return orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        return data.decode(errors="replace")
