"""Standard Webhooks signing and the retry schedule of events to the host app."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.config import webhook_key
from server.hostevents.schedule import JITTER, MAX_DELAY_S, backoff_s, next_attempt
from server.hostevents.signing import Signer

KEY = bytes(range(32))
SECRET = "whsec_" + base64.b64encode(KEY).decode()


def expected(message_id: str, timestamp: int, body: bytes, key: bytes = KEY) -> str:
    """Written from the specification, not from the hub's code."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def test_signature_is_hmac_sha256_of_id_timestamp_and_body() -> None:
    body = '{"type": "flag.added", "note": "é"}'.encode()
    headers = Signer(SECRET).headers("msg_1", 1_700_000_000, body)
    assert headers == {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1700000000",
        "webhook-signature": expected("msg_1", 1_700_000_000, body),
    }


def test_the_specifications_example_signature() -> None:
    # The example of the Standard Webhooks specification (its secret, id, timestamp and payload).
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    signature = Signer(secret).signature("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@given(st.text(min_size=1, max_size=40), st.integers(0, 2**32), st.binary(max_size=200))
def test_any_body_signs_as_the_specification_says(message_id: str, timestamp: int, body: bytes) -> None:
    assert Signer(SECRET).signature(message_id, timestamp, body) == expected(message_id, timestamp, body)


def test_a_different_key_or_byte_changes_the_signature() -> None:
    other = "whsec_" + base64.b64encode(bytes(32)).decode()
    assert Signer(other).signature("m", 1, b"x") != Signer(SECRET).signature("m", 1, b"x")
    assert Signer(SECRET).signature("m", 1, b"y") != Signer(SECRET).signature("m", 1, b"x")
    assert Signer(SECRET).signature("m", 2, b"x") != Signer(SECRET).signature("m", 1, b"x")


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        (base64.b64encode(KEY).decode(), "must start with whsec_"),
        ("whsec_not base64!", "standard base64"),
        ("whsec_" + base64.b64encode(bytes(23)).decode(), "24 to 64 bytes, got 23"),
        ("whsec_" + base64.b64encode(bytes(65)).decode(), "24 to 64 bytes, got 65"),
    ],
)
def test_bad_secrets_are_refused(secret: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        webhook_key(secret)


def test_a_good_secret_gives_its_key() -> None:
    assert webhook_key(SECRET) == KEY


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    assert [backoff_s(n, 5.0) for n in (1, 2, 3, 4)] == [5.0, 10.0, 20.0, 40.0]
    assert backoff_s(20, 5.0) == MAX_DELAY_S
    assert backoff_s(10_000, 5.0) == MAX_DELAY_S  # no overflow
    assert backoff_s(2, 5.0, jitter=0.5) == 10.0 * (1 + JITTER * 0.5)


def test_a_day_of_retries_then_the_dead_letter_list() -> None:
    created, attempts, now, times = 1000.0, 0, 1000.0, []
    while True:
        attempts += 1  # the attempt at `now` failed
        following = next_attempt(attempts, window_from=created, now=now, base_s=5.0, retry_for_s=86_400)
        if following is None:
            break
        assert following > now
        times.append(following)
        now = following
    assert times[:4] == [1005.0, 1015.0, 1035.0, 1075.0]
    assert times[-1] == created + 86_400  # the last attempt falls at the end of the window
    assert 30 <= attempts <= 40  # doubling to an hour, then hourly, for a day


@given(
    st.integers(1, 100),
    st.floats(0, 1e6),
    st.floats(0, 2e5),
    st.floats(0.01, 100),
    st.floats(1, 1e5),
    st.floats(0, 0.999),
)
def test_the_next_attempt_stays_in_the_window(
    attempts: int, window_from: float, elapsed: float, base_s: float, retry_for_s: float, jitter: float
) -> None:
    now = window_from + elapsed
    following = next_attempt(
        attempts, window_from=window_from, now=now, base_s=base_s, retry_for_s=retry_for_s, jitter=jitter
    )
    if now >= window_from + retry_for_s:
        assert following is None
    else:
        assert following is not None and now < following <= window_from + retry_for_s
