"""The pure parts of intake: RFC 3339 times, the envelope parser, and which environment owns a room."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.recording.intake.envelope import BadWebhook, Envelope, parse_envelope, parse_time
from server.recording.intake.room_owners import RoomRouter
from tests.webhook_support import encode, event

# times

_moments = st.datetimes(datetime(1970, 1, 2), datetime(2200, 1, 1), timezones=st.just(UTC))


@given(
    moment=_moments,
    nanos=st.integers(0, 999_999_999),
    digits=st.integers(0, 9),
    offset_min=st.integers(-14 * 60, 14 * 60),
    zulu=st.sampled_from(["Z", "z"]),
)
def test_parse_time_reads_any_fraction_and_offset(
    moment: datetime, nanos: int, digits: int, offset_min: int, zulu: str
) -> None:
    moment = moment.replace(microsecond=0)
    fraction = f"{nanos:09d}"[:digits]
    expected = moment.timestamp() + (int(fraction) / 10**digits if digits else 0.0)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if digits else "")
    assert parse_time(text + zulu) == pytest.approx(expected, abs=1e-6)
    local = moment + timedelta(minutes=offset_min)
    sign = "+" if offset_min >= 0 else "-"
    shifted = local.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if digits else "")
    shifted += f"{sign}{abs(offset_min) // 60:02d}:{abs(offset_min) % 60:02d}"
    assert parse_time(shifted) == pytest.approx(expected, abs=1e-6)


def test_parse_time_samples_and_unset_values() -> None:
    assert parse_time("2021-11-30T12:58:49.97291247Z") == pytest.approx(1638277129.97291247, abs=1e-6)
    assert parse_time("2021-08-08T07:04:15Z") == 1628406255.0
    for unset in ("0001-01-01T00:00:00Z", None, "", 1638277129, "2021-11-30", "2021-13-01T00:00:00Z"):
        assert parse_time(unset) is None
    assert parse_time("2021-11-30T12:58:49.1234567890Z") is None  # more than nanoseconds


# envelopes


def test_a_stream_recording_sample_parses_with_numbers_made_numbers() -> None:
    body = encode(event("stream.recording.success", room_name=None, size="22989889", duration=185.5))
    parsed = parse_envelope(body)
    assert isinstance(parsed, Envelope) and parsed.raw == body
    assert parsed.type == "stream.recording.success" and parsed.timestamp == 1707752395.0
    assert parsed.data["size"] == 22989889 and parsed.data["duration"] == 185.5
    assert parsed.room_id == "room-1" and parsed.room_name is None


def test_a_legacy_recording_without_app_id_parses() -> None:
    raw = {**event("recording.failed"), "version": "1.0"}
    del raw["app_id"]
    assert parse_envelope(encode(raw)).type == "recording.failed"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(st.binary(max_size=200))
def test_any_bytes_are_an_envelope_or_a_bad_webhook(body: bytes) -> None:
    try:
        parse_envelope(body)
    except BadWebhook as exc:
        assert exc.reason
    # anything else raised fails the test


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "id": _json | st.text(min_size=1),
            "type": _json | st.text(min_size=1),
            "timestamp": _json | st.just("2024-01-01T00:00:00Z"),
            "data": _json | st.dictionaries(st.sampled_from(["size", "duration", "room_id"]), _json),
        },
    )
)
def test_any_json_object_is_an_envelope_or_a_bad_webhook(raw: dict[str, object]) -> None:
    try:
        parsed = parse_envelope(json.dumps(raw).encode())
    except BadWebhook as exc:
        assert exc.reason
        return
    assert parsed.id == raw["id"] and isinstance(parsed.data, dict)


# rooms


def test_room_owner_by_longest_prefix() -> None:
    router = RoomRouter("proctorhub", [("staging", "https://s/w"), ("proctorhub-edge", "https://e/w")])
    assert router.owner("proctorhub-ev1-3").kind == "own"
    assert router.owner("proctorhub").kind == "own"
    edge = router.owner("proctorhub-edge-ev1-1")
    assert (edge.kind, edge.prefix, edge.url) == ("relay", "proctorhub-edge", "https://e/w")
    assert router.owner("staging-ev-1").url == "https://s/w"
    for name in ("stagingx-ev-1", "proctorhubx-1", "other-1", "", None):
        assert router.owner(name).kind == "foreign"
