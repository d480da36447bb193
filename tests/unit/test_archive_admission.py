"""Which recording sources the archiver may read (admission.py, pure): what 100ms would send only."""

from __future__ import annotations

import pytest

from server.recording.archive.admission import (
    SourcePolicy,
    file_problem,
    private_allowed,
    s3_object,
    s3_problem,
    size_cap,
    url_problem,
)
from server.recording.archive.contract import SourceRefused

POLICY = SourcePolicy(
    bucket="rec-bucket",
    prefix="proctorhub",
    file_root="/srv/archive/100ms",
    hosts=("media.100ms.example", "*.cdn.example"),
    s3_endpoint="http://10.0.0.5:9000",
    max_bytes=1000,
)


@pytest.mark.parametrize(
    ("bucket", "key", "allowed"),
    [
        ("rec-bucket", "proctorhub/room/20240610/session/peer/stream.mp4", True),
        ("rec-bucket", "proctorhubx/a.mp4", False),
        ("rec-bucket", "proctorhub/../secrets/a.mp4", False),
        ("rec-bucket", "proctorhub//a.mp4", False),
        ("other", "proctorhub/a.mp4", False),
    ],
)
def test_s3_sources_come_from_the_recording_bucket_and_prefix(bucket: str, key: str, allowed: bool) -> None:
    assert (s3_problem(POLICY, bucket, key) is None) is allowed
    assert s3_problem(SourcePolicy(), "rec-bucket", "a.mp4") is not None  # no bucket: no s3 source


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/srv/archive/100ms/room/peer/stream.mp4", True),
        ("/srv/archive/100ms", False),
        ("/srv/archive/proctorhub/exam/c1/x.mp4", False),
        ("/etc/passwd", False),
        ("/srv/archive/100ms-other/x.mp4", False),
    ],
)
def test_files_come_from_the_simulators_folder_only(path: str, allowed: bool) -> None:
    assert (file_problem(POLICY, path) is None) is allowed
    assert file_problem(SourcePolicy(), path) is not None


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        # the recording bucket on AWS, virtual-hosted and path-style
        ("https://rec-bucket.s3.eu-west-1.amazonaws.com/proctorhub/r/s.mp4?X-Amz-Signature=1", True),
        ("https://rec-bucket.s3.amazonaws.com/proctorhub/r/s.mp4", True),
        ("https://s3.eu-west-1.amazonaws.com/rec-bucket/proctorhub/r/s.mp4", True),
        ("https://s3-eu-west-1.amazonaws.com/rec-bucket/proctorhub/r/s.mp4", True),
        ("https://evil.s3.amazonaws.com/proctorhub/r/s.mp4", False),
        ("https://rec-bucket.s3.amazonaws.com/exams/r/s.mp4", False),
        ("http://rec-bucket.s3.amazonaws.com/proctorhub/r/s.mp4", False),  # https only
        ("https://rec-bucket.s3.amazonaws.com.evil.example/proctorhub/r/s.mp4", False),
        # the S3 endpoint (http allowed: the operator named it), path-style into the bucket
        ("http://10.0.0.5:9000/rec-bucket/proctorhub/r/s.mp4", True),
        ("http://10.0.0.5:9000/other/proctorhub/r/s.mp4", False),
        ("http://10.0.0.5:9001/rec-bucket/proctorhub/r/s.mp4", False),
        # hosts of HMS_RECORDING_HOSTS, https only
        ("https://media.100ms.example/anything.mp4", True),
        ("https://a.cdn.example/x.mp4", True),
        ("https://cdn.example/x.mp4", False),
        ("http://media.100ms.example/x.mp4", False),
        ("https://user:pw@media.100ms.example/x.mp4", False),
        # anything else
        ("https://169.254.169.254/latest/meta-data/", False),
        ("http://127.0.0.1:8000/api/v1/events", False),
        ("ftp://media.100ms.example/x.mp4", False),
        ("not a url", False),
    ],
)
def test_presigned_urls_are_those_100ms_would_send(url: str, allowed: bool) -> None:
    assert (url_problem(POLICY, url) is None) is allowed, url_problem(POLICY, url)


def test_s3_urls_name_their_object() -> None:
    assert s3_object(POLICY, "https://a.b.s3.us-east-1.amazonaws.com/k/x%20y.mp4") == ("a.b", "k/x y.mp4")
    assert s3_object(POLICY, "https://s3.amazonaws.com/bkt/k/x.mp4") == ("bkt", "k/x.mp4")
    assert s3_object(POLICY, "https://example.com/bkt/k.mp4") is None


def test_only_the_s3_endpoint_may_be_private() -> None:
    assert private_allowed(POLICY, "10.0.0.5", 9000)
    assert not private_allowed(POLICY, "10.0.0.5", 9001)
    assert not private_allowed(POLICY, "127.0.0.1", 9000)
    assert not private_allowed(SourcePolicy(), "10.0.0.5", 9000)


def test_the_size_cap_is_the_announced_size() -> None:
    assert size_cap(POLICY, "k", 500) == 500
    assert size_cap(POLICY, "k", 0) == 1000  # none announced: HMS_RECORDING_MAX_BYTES
    with pytest.raises(SourceRefused, match="HMS_RECORDING_MAX_BYTES") as refused:
        size_cap(POLICY, "k", 1001)
    assert refused.value.reason == "too_large"
