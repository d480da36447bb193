"""moto's standalone S3 server on a free loopback port, for tests that talk to S3 over HTTP.

Fixture `s3_server` (session scope) yields an `S3Server` with `endpoint_url`; `s3_server.client()`
is a boto3 client for it and `s3_server.bucket()` creates a fresh bucket and returns its name.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.servers import free_port, stop_process, wait_for_port

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@dataclass
class S3Server:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            region_name=REGION,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def bucket(self) -> str:
        """A new, empty bucket (tests sharing the server never see each other's objects)."""
        name = f"test-{uuid.uuid4().hex[:16]}"
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        finally:
            client.close()
        return name

    def stop(self) -> None:
        stop_process(self.proc)


def start_s3(*, timeout: float = 20.0) -> S3Server:
    port = free_port()
    env = {**os.environ, **CREDENTIALS}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port), "-H", "127.0.0.1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = S3Server(port, proc)
    try:
        wait_for_port(port, timeout=timeout, proc=proc)
        deadline = time.monotonic() + timeout
        while True:  # listening is not answering yet
            try:
                httpx.get(f"{server.endpoint_url}/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server for the whole test session; boto3 reaches it at `s3_server.endpoint_url`."""
    server = start_s3()
    yield server
    server.stop()
