"""The pure LTI message rules (server/lti/messages.py): launch claims, ids, LtiStartAssessment, ACS bodies."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.lti.messages import (
    AP,
    LTI,
    AcsRefused,
    AcsRequest,
    LaunchRefused,
    acs_body,
    attempt_number,
    display_name,
    event_id_for,
    read_launch,
    same_launch_url,
    start_assessment_claims,
    user_id_for,
)
from server.store.lti import LtiAttempt, LtiPlatform

PLATFORM = LtiPlatform(
    "p1", "https://lms", "client", ["d1"], "https://lms/a", "https://lms/t", "https://lms/j"
)
EVENT_ID = r"[A-Za-z0-9._-]{1,128}"


def claims(**changes: Any) -> dict[str, Any]:
    base = {
        "aud": "client",
        "nonce": "n",
        "sub": "s1",
        "given_name": "Ada",
        LTI + "message_type": "LtiStartProctoring",
        LTI + "version": "1.3.0",
        LTI + "deployment_id": "d1",
        LTI + "resource_link": {"id": "rl"},
        AP + "attempt_number": 1,
        AP + "session_data": "sd",
        AP + "start_assessment_url": "https://lms/start",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def test_a_valid_start_and_a_valid_end() -> None:
    launch = read_launch(claims(), PLATFORM, nonce="n")
    assert (launch.sub, launch.attempt_number, launch.identity) == ("s1", 1, {"given_name": "Ada"})
    end = claims(**{LTI + "message_type": "LtiEndAssessment", AP + "session_data": None})
    assert read_launch({**end, AP + "start_assessment_url": None}, PLATFORM, nonce="n").session_data is None


@pytest.mark.parametrize(("raw", "number"), [(1, 1), ("2", 2), (" 3 ", 3)])
def test_attempt_numbers_as_integers_or_numeric_strings(raw: object, number: int) -> None:
    assert attempt_number(raw) == number


@pytest.mark.parametrize("raw", [0, -1, "x", "1.5", 1.0, True, None, "", [1]])
def test_other_attempt_numbers_are_refused(raw: object) -> None:
    with pytest.raises(LaunchRefused):
        attempt_number(raw)


def test_an_unregistered_deployment_is_403() -> None:
    with pytest.raises(LaunchRefused) as info:
        read_launch(claims(**{LTI + "deployment_id": "d2"}), PLATFORM, nonce="n")
    assert info.value.status == 403


@given(st.text(min_size=1, max_size=300))
def test_event_and_user_ids_always_fit(link_or_sub: str) -> None:
    assert re.fullmatch(EVENT_ID, event_id_for("0123456789ab", link_or_sub))
    assert 0 < len(user_id_for(link_or_sub)) <= 128
    assert event_id_for("p", link_or_sub) == event_id_for("p", link_or_sub)


def test_names_come_from_the_identity_claims() -> None:
    assert display_name({"name": "Ada L."}) == "Ada L."
    assert display_name({"given_name": "Ada", "family_name": "Lovelace"}) == "Ada Lovelace"
    assert display_name({}) is None


ATTEMPT = LtiAttempt(
    "p1",
    "lti-p1-rl",
    "s1",
    {"id": "rl", "title": "T"},
    2,
    "sd/=",
    "https://lms/start",
    "d1",
    0.0,
    acs={"assessment_control_url": "https://lms/acs", "actions": ["flag"]},
    identity={"given_name": "Ada"},
    sub="s1",
)


def test_start_assessment_echoes_the_launch() -> None:
    out = start_assessment_claims(ATTEMPT, PLATFORM, now=100.0, nonce="x", ttl_s=60, verified=False)
    assert (out["iss"], out["aud"], out["exp"]) == ("client", "https://lms", 160)
    assert out[AP + "session_data"] == "sd/=" and out[AP + "attempt_number"] == 2
    assert AP + "verified_user" not in out
    verified = start_assessment_claims(ATTEMPT, PLATFORM, now=100.0, nonce="x", ttl_s=60, verified=True)
    assert verified[AP + "verified_user"] == {"given_name": "Ada"}


def test_acs_bodies_only_for_offered_actions() -> None:
    body = acs_body(ATTEMPT, PLATFORM, AcsRequest("flag", reason_code="r"), incident_time="t")
    assert body == {
        "user": {"iss": "https://lms", "sub": "s1"},
        "resource_link": {"id": "rl", "title": "T"},
        "attempt_number": 2,
        "action": "flag",
        "incident_time": "t",
        "reason_code": "r",
    }
    with pytest.raises(AcsRefused):
        acs_body(ATTEMPT, PLATFORM, AcsRequest("terminate"), incident_time="t")


OURS = "https://proctor.example.com/lti/launch"


@pytest.mark.parametrize(
    ("uri", "ours"),
    [
        (OURS, True),
        ("HTTPS://Proctor.Example.com/lti/launch/", True),
        (OURS + "?placement=proctoring#x", True),
        (" " + OURS, True),
        ("http://proctor.example.com/lti/launch", False),
        ("https://proctor.example.com:8443/lti/launch", False),
        ("https://proctor.example.com/lti/login", False),
        ("https://proctor.example.com.evil/lti/launch", False),
        ("https://evil.example/https://proctor.example.com/lti/launch", False),
        ("", False),
    ],
)
def test_only_our_launch_url_is_ours(uri: str, ours: bool) -> None:
    assert same_launch_url(uri, OURS) is ours


@given(st.text(max_size=60))
def test_no_text_is_taken_for_our_launch_url_unless_it_names_it(junk: str) -> None:
    if same_launch_url(junk, OURS):
        assert junk.strip().lower().startswith("https://proctor.example.com/lti/launch")
