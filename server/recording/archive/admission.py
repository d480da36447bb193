"""Which recording sources the archiver may read (pure): only what 100ms would send.

A `stream.recording.success` names its file twice: `recording_path` (`s3://bucket/key`, or `file://`
from the simulator's folder) and `recording_presigned_url`. The webhook is the sender's word, so each
is checked against the deployment's own settings before any byte moves:

    s3://bucket/key      the recording bucket (HMS_RECORDING_BUCKET, else S3_BUCKET), under its prefix
    file:///path         under the simulator's folder (ARCHIVE_DIR/<prefix>), never the archive's own
    https://host/...     a host of HMS_RECORDING_HOSTS (100ms's own storage), or an S3 URL of an object
                         in the recording bucket under its prefix (AWS hosts, or S3_ENDPOINT_URL's
                         origin, the one origin also allowed over http and on a private address)

What the shells enforce while reading: no redirects, every resolved address public (but the S3
endpoint's), and at most `size_cap` bytes. A refusal is `SourceRefused`: logged, counted, put in the
manifest, never retried.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from server.recording.archive.contract import SourceRefused

S3_SERVICE_HOST = re.compile(r"s3(?:[.-](?:dualstack\.)?[a-z0-9-]+)?\.amazonaws\.com(?:\.cn)?")
"""AWS S3 endpoints: s3.amazonaws.com, s3.eu-west-1.amazonaws.com, s3-eu-west-1..., s3.dualstack..."""


@dataclass(frozen=True)
class SourcePolicy:
    bucket: str | None = None
    prefix: str = ""
    file_root: str | None = None  # absolute folder; None: no file:// source is read
    hosts: tuple[str, ...] = ()  # "media.example.com" or "*.example.com"
    s3_endpoint: str | None = None  # S3_ENDPOINT_URL (path-style; trusted on a private address)
    max_bytes: int = 16 * 1024**3

    def endpoint_origin(self) -> tuple[str, str, int] | None:
        return origin(self.s3_endpoint) if self.s3_endpoint else None


def origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL, the port filled in; None for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)


def under(prefix: str, key: str) -> bool:
    """Is `key` a plain key (no `.`/`..`/empty segment) under the key prefix `prefix`?"""
    if not key or key.startswith("/") or "\\" in key or "\0" in key:
        return False
    if any(part in ("", ".", "..") for part in key.split("/")):
        return False
    prefix = prefix.strip("/")
    return not prefix or key.startswith(prefix + "/")


def s3_problem(policy: SourcePolicy, bucket: str, key: str) -> str | None:
    """Why `s3://bucket/key` is not a recording of this deployment, or None if it is."""
    if policy.bucket is None:
        return "no recording bucket is configured (HMS_RECORDING_BUCKET or S3_BUCKET)"
    if bucket != policy.bucket:
        return f"bucket {bucket!r} is not the recording bucket {policy.bucket!r}"
    if not under(policy.prefix, key):
        return f"key {key!r} is not under the recording prefix {policy.prefix!r}"
    return None


def file_problem(policy: SourcePolicy, resolved: str) -> str | None:
    """Why the (symlink-resolved, absolute) file is not the simulator's recording, or None."""
    if policy.file_root is None:
        return "file:// recordings are read only from the simulator's folder, and none is configured"
    if not PurePosixPath(resolved).is_relative_to(policy.file_root) or resolved == policy.file_root:
        return f"it is outside {policy.file_root} (ARCHIVE_DIR/HMS_RECORDING_PREFIX)"
    return None


def host_listed(hosts: tuple[str, ...], host: str) -> bool:
    for entry in hosts:
        if entry.startswith("*.") and host.endswith(entry[1:]) and len(host) > len(entry) - 1:
            return True
        if host == entry:
            return True
    return False


def s3_object(policy: SourcePolicy, url: str) -> tuple[str, str] | None:
    """The (bucket, key) an S3 URL addresses, path-style or virtual-hosted, on AWS or the endpoint."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    path = unquote(parts.path)
    endpoint = policy.endpoint_origin()
    path_style = S3_SERVICE_HOST.fullmatch(host) is not None or (
        endpoint is not None and origin(url) == endpoint
    )
    if path_style:
        bucket, _, key = path.removeprefix("/").partition("/")
        return (bucket, key) if bucket else None
    labels = host.split(".")
    for i in range(1, len(labels)):
        if S3_SERVICE_HOST.fullmatch(".".join(labels[i:])):
            return ".".join(labels[:i]), path.removeprefix("/")
    return None


def url_problem(policy: SourcePolicy, url: str) -> str | None:
    """Why a presigned URL is not one 100ms would send for this deployment, or None."""
    where = origin(url)
    if where is None or urlsplit(url).username is not None or urlsplit(url).password is not None:
        return "not a plain http(s) URL"
    scheme, host, _port = where
    if where == policy.endpoint_origin():
        located = s3_object(policy, url)
        return "not an object of S3_ENDPOINT_URL" if located is None else s3_problem(policy, *located)
    if scheme != "https":
        return "only https is accepted (but from S3_ENDPOINT_URL)"
    if host_listed(policy.hosts, host):
        return None
    located = s3_object(policy, url)
    if located is None:
        return f"host {host!r} is neither an S3 host nor listed in HMS_RECORDING_HOSTS"
    return s3_problem(policy, *located)


def private_allowed(policy: SourcePolicy, host: str, port: int) -> bool:
    """May a connection to host:port reach a private or loopback address? Only S3_ENDPOINT_URL's."""
    endpoint = policy.endpoint_origin()
    return endpoint is not None and (endpoint[1], endpoint[2]) == (host.lower(), port)


def size_cap(policy: SourcePolicy, key: str, announced: int) -> int:
    """The most bytes to read: the announced size when there is one. SourceRefused when the
    announcement itself is over HMS_RECORDING_MAX_BYTES."""
    if announced > policy.max_bytes:
        limit = f"HMS_RECORDING_MAX_BYTES ({policy.max_bytes})"
        raise SourceRefused(key, "too_large", f"announced {announced} bytes, over {limit}")
    return announced if announced > 0 else policy.max_bytes


def over_cap(key: str, cap: int, size: int) -> SourceRefused:
    return SourceRefused(key, "too_large", f"more than the {cap} bytes allowed (read {size})")
