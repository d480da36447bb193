"""Shared by the archive tests: a recording source, settings, and an AWS environment for moto."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from server.config import Settings
from server.recording.archive.contract import SegmentSource
from tests.s3 import CREDENTIALS

SECRET = "archive-test-secret-" + "s" * 24
STARTED = 1_718_000_000.25  # 2024-06-10T06:13:20Z


def source(**fields: Any) -> SegmentSource:
    base = SegmentSource(
        event_id="exam-1",
        candidate_id="cand-1",
        room_id="665f1b2c3d4e5f6a7b8c9d0e",
        session_id="665f1b2c3d4e5f6a7b8c9d0f",
        peer_id="83b869e1-9a4b-4037-84b2-913cf76e4392",
        recording_id="6425320e94091a5af841456f",
        kind="stream",
        source_path="s3://bucket/100ms/room/20240610/session/peer/stream.mp4",
        presigned_url=None,
        started_at=STARTED,
        ended_at=STARTED + 185,
        duration_s=185.0,
        size=0,
    )
    return replace(base, **fields)


def settings(**fields: Any) -> Settings:
    """The archive's settings; recordings come from under `100ms/`, where the simulator writes them."""
    return Settings(**{"hub_secret": SECRET, "hms_recording_prefix": "100ms", **fields})


AWS_FILES = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN")


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """moto's credentials in the environment (the archive uses the usual AWS chain), nothing else."""
    for name in AWS_FILES:
        monkeypatch.delenv(name, raising=False)
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    empty = tmp_path_factory.mktemp("aws")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield


@pytest.fixture
def no_aws_env(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """No AWS credentials anywhere (and no instance-metadata lookup)."""
    for name in CREDENTIALS:
        monkeypatch.delenv(name)
