"""The wire codec (docs/protocol.md, "WebSocket"): choosing a codec, parsing untrusted frames, encoding."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.errors import BadFrame
from server.protocol import (
    CLIENT_TYPES,
    ClientMessage,
    Codec,
    Outbound,
    choose_codec,
    decode_untrusted,
    encode,
    error,
)

# ---------------------------------------------------------------- codec choice


@pytest.mark.parametrize(
    ("offered", "expected"),
    [
        ([], (Codec.JSON, None)),
        (["proctorhub.v1.json"], (Codec.JSON, "proctorhub.v1.json")),
        (["proctorhub.v1.msgpack"], (Codec.MSGPACK, "proctorhub.v1.msgpack")),
        (["proctorhub.v1.msgpack", "proctorhub.v1.json"], (Codec.MSGPACK, "proctorhub.v1.msgpack")),
        (["proctorhub.v1.json", "proctorhub.v1.msgpack"], (Codec.JSON, "proctorhub.v1.json")),
        (["graphql-ws", "proctorhub.v1.msgpack"], (Codec.MSGPACK, "proctorhub.v1.msgpack")),
        (["graphql-ws", "proctorhub.v2.json"], (Codec.JSON, None)),
    ],
)
def test_choose_codec(offered: list[str], expected: tuple[Codec, str | None]) -> None:
    assert choose_codec(offered) == expected


# ---------------------------------------------------------------- decoding

# One valid `data` per client message type of docs/protocol.md.
VALID: dict[str, dict[str, Any]] = {
    "auth": {"token": "a.b.c"},
    "auth.refresh": {"token": "d.e.f"},
    "ping": {},
    "ack": {"id": 17},
    "media.status": {"peer_id": "p1", "room_id": "r1", "joined": True, "video": False, "audio": True},
    "media.observed": {"candidate_id": "c1", "video": False, "at": 1700000000000},
    "finish": {},
    "flag": {"candidate_id": "c1", "note": "looked away", "severity": "medium"},
    "warn": {"candidate_id": "c1", "text": "eyes on the screen"},
    "subscribe": {"event_id": "exam-1"},
}


def frame(codec: Codec, envelope: object) -> str | bytes:
    if codec is Codec.JSON:
        return json.dumps(envelope)
    return msgpack.packb(envelope, use_bin_type=True)


def bad(envelope: object, codec: Codec = Codec.JSON) -> str:
    with pytest.raises(BadFrame) as info:
        decode_untrusted(frame(codec, envelope), codec)
    assert info.value.code == 4400
    return info.value.message


def test_every_client_type_of_the_contract_has_an_example() -> None:
    assert set(VALID) == CLIENT_TYPES


@pytest.mark.parametrize("codec", list(Codec))
@pytest.mark.parametrize("msg_type", sorted(VALID))
def test_valid_client_messages_are_accepted(codec: Codec, msg_type: str) -> None:
    envelope = {"type": msg_type, "id": 3, "data": VALID[msg_type]}
    assert decode_untrusted(frame(codec, envelope), codec) == ClientMessage(msg_type, 3, VALID[msg_type])


def test_json_accepts_text_and_bytes() -> None:
    text = '{"type": "ping", "id": 1, "data": {}}'
    expected = ClientMessage("ping", 1, {})
    assert decode_untrusted(text, Codec.JSON) == expected
    assert decode_untrusted(text.encode(), Codec.JSON) == expected


def test_msgpack_in_a_text_frame_is_refused() -> None:
    with pytest.raises(BadFrame, match="binary"):
        decode_untrusted(msgpack.packb({"type": "ping"}).decode("latin-1"), Codec.MSGPACK)


@pytest.mark.parametrize(
    ("envelope", "expected"),
    [
        ({"type": "ping"}, ClientMessage("ping", None, {})),
        ({"type": "ping", "id": None, "data": None}, ClientMessage("ping", None, {})),
        ({"type": "ping", "id": 0}, ClientMessage("ping", 0, {})),
        (
            {
                "type": "media.status",
                "data": {"room_id": None, "joined": False, "video": False, "audio": False},
            },
            ClientMessage(
                "media.status", None, {"room_id": None, "joined": False, "video": False, "audio": False}
            ),
        ),
        (
            {"type": "media.status", "data": {**VALID["media.status"], "peer_id": None, "error": "denied"}},
            ClientMessage(
                "media.status", None, {**VALID["media.status"], "peer_id": None, "error": "denied"}
            ),
        ),
        (
            {"type": "ack", "data": {"id": 5, "extra": [1]}},
            ClientMessage("ack", None, {"id": 5, "extra": [1]}),
        ),
    ],
)
def test_optional_parts_may_be_left_out(envelope: dict[str, Any], expected: ClientMessage) -> None:
    assert decode_untrusted(json.dumps(envelope), Codec.JSON) == expected


@pytest.mark.parametrize("codec", list(Codec))
def test_unknown_types_pass_through_unchecked(codec: Codec) -> None:
    envelope = {"type": "teleport", "id": 9, "data": {"where": ["mars"], "n": 1.5}}
    assert decode_untrusted(frame(codec, envelope), codec) == ClientMessage("teleport", 9, envelope["data"])


def with_data(msg_type: str, **changes: Any) -> dict[str, Any]:
    """The valid example of `msg_type` with fields changed; `...` (Ellipsis) removes one."""
    data = {**VALID[msg_type], **changes}
    return {"type": msg_type, "data": {k: v for k, v in data.items() if v is not ...}}


BAD_DATA = {
    "auth-token-missing": with_data("auth", token=...),
    "auth-token-int": with_data("auth", token=5),
    "auth-token-null": with_data("auth", token=None),
    "auth-token-empty": with_data("auth", token=""),
    "auth-token-too-long": with_data("auth", token="t" * 8193),
    "refresh-token-list": with_data("auth.refresh", token=["a"]),
    "ack-id-missing": with_data("ack", id=...),
    "ack-id-string": with_data("ack", id="17"),
    "ack-id-bool": with_data("ack", id=True),
    "ack-id-float": with_data("ack", id=1.0),
    "media-joined-missing": with_data("media.status", joined=...),
    "media-room-missing": with_data("media.status", room_id=...),
    "media-video-int": with_data("media.status", video=1),
    "media-audio-string": with_data("media.status", audio="yes"),
    "media-room-too-long": with_data("media.status", room_id="r" * 257),
    "media-peer-int": with_data("media.status", peer_id=3),
    "media-error-too-long": with_data("media.status", error="e" * 1001),
    "flag-severity-bad": with_data("flag", severity="critical"),
    "flag-severity-case": with_data("flag", severity="HIGH"),
    "flag-severity-int": with_data("flag", severity=3),
    "flag-note-missing": with_data("flag", note=...),
    "flag-note-too-long": with_data("flag", note="n" * 2001),
    "flag-candidate-too-long": with_data("flag", candidate_id="c" * 129),
    "flag-candidate-null": with_data("flag", candidate_id=None),
    "warn-text-missing": with_data("warn", text=...),
    "warn-text-too-long": with_data("warn", text="w" * 1001),
    "warn-candidate-dict": with_data("warn", candidate_id={"id": "c1"}),
    "subscribe-event-missing": with_data("subscribe", event_id=...),
    "subscribe-event-bool": with_data("subscribe", event_id=False),
    "subscribe-event-empty": with_data("subscribe", event_id=""),
}


@pytest.mark.parametrize("codec", list(Codec))
@pytest.mark.parametrize("envelope", list(BAD_DATA.values()), ids=list(BAD_DATA))
def test_bad_data_is_refused(envelope: dict[str, Any], codec: Codec) -> None:
    assert f"{envelope['type']}.data." in bad(envelope, codec)


def test_string_limits_are_inclusive() -> None:
    for envelope in (
        with_data("auth", token="t" * 8192),
        with_data("flag", note="n" * 2000, candidate_id="c" * 128),
        with_data("warn", text="w" * 1000),
        with_data("media.status", room_id="r" * 256, peer_id="p" * 256, error="e" * 1000),
    ):
        assert decode_untrusted(json.dumps(envelope), Codec.JSON).data == envelope["data"]


BAD_ENVELOPES = {
    "list": [{"type": "ping"}],
    "string": "ping",
    "number": 7,
    "null": None,
    "type-missing": {"id": 1, "data": {}},
    "type-null": {"type": None},
    "type-int": {"type": 1},
    "type-empty": {"type": ""},
    "type-too-long": {"type": "t" * 65},
    "id-negative": {"type": "ping", "id": -1},
    "id-bool": {"type": "ping", "id": True},
    "id-float": {"type": "ping", "id": 1.5},
    "id-string": {"type": "ping", "id": "1"},
    "data-list": {"type": "ping", "data": []},
    "data-string": {"type": "ping", "data": "{}"},
    "data-int": {"type": "ping", "data": 0},
    "data-false": {"type": "ping", "data": False},
    "unknown-type-data-list": {"type": "teleport", "data": [1]},
}


@pytest.mark.parametrize("codec", list(Codec))
@pytest.mark.parametrize("envelope", list(BAD_ENVELOPES.values()), ids=list(BAD_ENVELOPES))
def test_bad_envelopes_are_refused(envelope: object, codec: Codec) -> None:
    bad(envelope, codec)


@pytest.mark.parametrize(
    ("raw", "codec"),
    [
        ("", Codec.JSON),
        ("{", Codec.JSON),
        ("ping", Codec.JSON),
        (b"\xff\xfe", Codec.JSON),
        ('{"type": "ping"} {}', Codec.JSON),
        (b"", Codec.MSGPACK),
        (b"\xc1", Codec.MSGPACK),
        (b"\x81\xa4type", Codec.MSGPACK),
        (msgpack.packb({"type": "ping"}) + b"\x00", Codec.MSGPACK),
        (b"\x81\xa4type\xa2\xff\xfe", Codec.MSGPACK),
        (b"\x81\x91\x01\x02", Codec.MSGPACK),
    ],
    ids=[
        "json-empty",
        "json-truncated",
        "json-bare-word",
        "json-not-utf8",
        "json-extra-data",
        "msgpack-empty",
        "msgpack-reserved-byte",
        "msgpack-truncated",
        "msgpack-extra-data",
        "msgpack-str-not-utf8",
        "msgpack-unhashable-key",
    ],
)
def test_undecodable_frames_are_refused(raw: str | bytes, codec: Codec) -> None:
    with pytest.raises(BadFrame, match=f"not valid {codec.name.lower()}"):
        decode_untrusted(raw, codec)


# ---------------------------------------------------------------- encoding

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)
_data = st.dictionaries(st.text(), _json_values, max_size=6)
_ids = st.integers(min_value=0, max_value=2**53)


def decode_frame(raw: str | bytes, codec: Codec) -> Any:
    if codec is Codec.JSON:
        assert isinstance(raw, str)
        return orjson.loads(raw)
    assert isinstance(raw, bytes)
    return msgpack.unpackb(raw, raw=False)


@settings(max_examples=200, deadline=None)
@given(
    codec=st.sampled_from(list(Codec)),
    msg_type=st.text(min_size=1, max_size=40),
    data=_data,
    msg_id=_ids,
    re=st.none() | _ids,
    ts_ms=st.integers(min_value=0, max_value=2**50),
)
def test_encode_decodes_back_to_the_envelope(
    codec: Codec, msg_type: str, data: dict[str, Any], msg_id: int, re: int | None, ts_ms: int
) -> None:
    message = Outbound(msg_type, data, re=re)
    raw = encode(message, codec, msg_id=msg_id, ts_ms=ts_ms)
    assert decode_frame(raw, codec) == {"type": msg_type, "id": msg_id, "re": re, "ts": ts_ms, "data": data}
    # The next socket's frame, from what the first encoding cached: only the id and the time differ.
    again = encode(message, codec, msg_id=msg_id + 1, ts_ms=ts_ms + 1)
    assert decode_frame(again, codec) == {
        "type": msg_type,
        "id": msg_id + 1,
        "re": re,
        "ts": ts_ms + 1,
        "data": data,
    }


@pytest.mark.parametrize("codec", list(Codec))
def test_encode_matches_a_plain_encoder(codec: Codec) -> None:
    message = Outbound("candidate.status", {"candidate_id": "c1", "open_alerts": 2, "video": "on"}, re=4)
    raw = encode(message, codec, msg_id=12, ts_ms=1_764_000_000_123)
    envelope = {"type": message.type, "id": 12, "re": 4, "ts": 1_764_000_000_123, "data": message.data}
    if codec is Codec.JSON:
        assert raw == orjson.dumps(envelope).decode()
    else:
        assert raw == msgpack.packb(envelope, use_bin_type=True)


@pytest.mark.parametrize("codec", list(Codec))
def test_encoded_data_is_cached_per_codec(codec: Codec) -> None:
    message = Outbound("roster", {"candidates": []})
    first = message.encoded_data(codec)
    message.data["candidates"].append("changed after encoding")
    assert message.encoded_data(codec) is first
    assert decode_frame(encode(message, codec, msg_id=1, ts_ms=0), codec)["data"] == {"candidates": []}
    other = Codec.MSGPACK if codec is Codec.JSON else Codec.JSON
    assert decode_frame(encode(message, other, msg_id=1, ts_ms=0), other)["data"] == message.data


def test_one_message_encodes_for_many_connections() -> None:
    message = Outbound("event.stats", {"online": 3})
    frames = [orjson.loads(encode(message, Codec.JSON, msg_id=i, ts_ms=5)) for i in (1, 2, 3)]
    assert [f["id"] for f in frames] == [1, 2, 3]
    assert all(f["data"] == {"online": 3} for f in frames)


@pytest.mark.parametrize(
    "message",
    [
        Outbound("pong", {}, re=7),
        Outbound("candidate.status", {"candidate_id": "c1", "presence": "online"}, coalesce_key="status:c1"),
        Outbound("alert", {"alert_id": "a1", "detail": {"gap_s": 3.5}}),
    ],
    ids=["re", "coalesce-key", "plain"],
)
def test_to_wire_from_wire_round_trip(message: Outbound) -> None:
    wire = message.to_wire()
    assert set(wire) == {"type", "data", "re", "coalesce_key"}
    for through in (
        lambda w: w,
        lambda w: orjson.loads(orjson.dumps(w)),
        lambda w: msgpack.unpackb(msgpack.packb(w)),
    ):
        copy = Outbound.from_wire(through(wire))
        assert (copy.type, copy.data, copy.re, copy.coalesce_key) == (
            message.type,
            message.data,
            message.re,
            message.coalesce_key,
        )


def test_from_wire_defaults_optional_fields() -> None:
    copy = Outbound.from_wire({"type": "pong", "data": {}})
    assert (copy.re, copy.coalesce_key) == (None, None)


def test_error_helper() -> None:
    message = error("unknown_type", "no such type", re=3)
    assert decode_frame(encode(message, Codec.JSON, msg_id=1, ts_ms=2), Codec.JSON) == {
        "type": "error",
        "id": 1,
        "re": 3,
        "ts": 2,
        "data": {"code": "unknown_type", "message": "no such type"},
    }


# ---------------------------------------------------------------- fuzz

_msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | st.sampled_from(sorted(CLIENT_TYPES)),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["type", "id", "re", "data", "token", "severity", "joined", "room_id"])
            | st.text(max_size=5),
            inner,
            max_size=5,
        )
    ),
    max_leaves=15,
)


def only_bad_frame(raw: str | bytes, codec: Codec) -> None:
    try:
        message = decode_untrusted(raw, codec)
    except BadFrame:
        return
    assert isinstance(message, ClientMessage)
    assert isinstance(message.type, str) and isinstance(message.data, dict)


@settings(max_examples=300, deadline=None)
@given(codec=st.sampled_from(list(Codec)), raw=st.binary(max_size=200) | st.text(max_size=200))
def test_random_bytes_and_text_raise_only_bad_frame(codec: Codec, raw: str | bytes) -> None:
    only_bad_frame(raw, codec)


@settings(max_examples=300, deadline=None)
@given(value=_msgpack_values, codec=st.sampled_from(list(Codec)))
def test_random_packed_objects_raise_only_bad_frame(value: Any, codec: Codec) -> None:
    raw = msgpack.packb(value, use_bin_type=True)
    only_bad_frame(raw, Codec.MSGPACK)
    if codec is Codec.JSON:
        try:
            text = json.dumps(value, default=repr)
        except (TypeError, ValueError):
            return
        only_bad_frame(text, Codec.JSON)


@settings(max_examples=300, deadline=None)
@given(
    msg_type=st.sampled_from(sorted(CLIENT_TYPES)),
    data=st.dictionaries(
        st.sampled_from(["token", "id", "room_id", "peer_id", "joined", "video", "audio", "error"])
        | st.sampled_from(["candidate_id", "note", "severity", "text", "event_id"]),
        _msgpack_values,
        max_size=6,
    ),
    msg_id=st.none() | st.integers(min_value=-5, max_value=2**64 - 1) | st.booleans(),
)
def test_random_data_for_known_types_raise_only_bad_frame(
    msg_type: str, data: dict[str, Any], msg_id: Any
) -> None:
    envelope = {"type": msg_type, "id": msg_id, "data": data}
    only_bad_frame(msgpack.packb(envelope, use_bin_type=True), Codec.MSGPACK)


# ---------------------------------------------------------------- media.status.local (extension E15)


def _status_with(local: object) -> str:
    data = {"room_id": "r1", "joined": True, "video": True, "audio": True, "local": local}
    return orjson.dumps({"type": "media.status", "data": data}).decode()


def test_media_status_carries_what_the_page_holds_locally() -> None:
    for local in (
        {"held_s": 120.5, "from": 1_700_000_000_000, "quota_short": False},
        {"held_s": 0, "from": None, "quota_short": True},
    ):
        assert decode_untrusted(_status_with(local), Codec.JSON).data["local"] == local


@pytest.mark.parametrize(
    "local",
    [
        "120",
        {"held_s": -1, "from": None, "quota_short": False},
        {"held_s": True, "from": None, "quota_short": False},
        {"held_s": 1, "from": "x", "quota_short": False},
        {"held_s": 1, "from": None, "quota_short": 1},
        {"held_s": 1, "from": None, "quota_short": False, "extra": 1},
        {"held_s": float("nan"), "from": None, "quota_short": False},
    ],
)
def test_a_bad_local_report_is_a_bad_frame(local: object) -> None:
    with pytest.raises(BadFrame, match="local"):
        decode_untrusted(_status_with(local), Codec.JSON)
