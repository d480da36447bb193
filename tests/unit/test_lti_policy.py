"""The event's ACS policy (server/api/lti_config.py) and what it asks of a timeline or a proctor's flag
(server/lti/acs_rules.py), over generated gaps, policies and offered actions."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.api.lti_config import (
    FLAGGABLE_ALERTS,
    GAP_CAUSES,
    PROCTOR_SEVERITIES,
    LtiPolicy,
    PolicyInvalid,
    parse_lti,
    resolve,
)
from server.lti.acs_rules import ALERT_SEVERITY, proctor_flag_due, timeline_due
from server.lti.messages import ACS_ACTIONS, AcsRequest
from server.recording.monitor.alerts import alert_id
from server.recording.monitor.timeline import (
    RECORDING_FAILED,
    RECORDING_MISSING,
    SPAN_KINDS,
    VIDEO_DISPUTED,
    VIDEO_GAP,
    Gap,
    Timeline,
)
from server.store.records import FlagRecord

NOW = 10_000.0


def timeline_of(gaps: list[Gap]) -> Timeline:
    return Timeline((), (), (), (), (), tuple(gaps), (), "on", "on", None)


def subsets(choices: tuple[str, ...]) -> st.SearchStrategy[frozenset[str]]:
    return st.frozensets(st.sampled_from(choices))


policies = st.builds(
    LtiPolicy,
    flag_alerts=subsets(FLAGGABLE_ALERTS),
    flag_gap_s=st.floats(0.5, 600),
    flag_proctor_severities=subsets(PROCTOR_SEVERITIES),
    extra_time_causes=subsets(GAP_CAUSES),
)


@st.composite
def gaps(draw: st.DrawFn) -> Gap:
    kind = draw(st.sampled_from((VIDEO_GAP, VIDEO_DISPUTED, RECORDING_FAILED, RECORDING_MISSING)))
    cause = {
        VIDEO_GAP: draw(st.sampled_from(GAP_CAUSES)),
        VIDEO_DISPUTED: "observers_see_no_video",
        RECORDING_FAILED: "recording_failed",
        RECORDING_MISSING: "recording_missing",
    }[kind]
    start = draw(st.floats(0, NOW - 1))
    end = draw(st.none() | st.floats(start, NOW))
    peer = "" if kind in SPAN_KINDS else draw(st.sampled_from(("p1", "p2", "p3")))
    return Gap(kind, cause, start, end, peer_id=peer)


def unique_gaps(found: list[Gap]) -> list[Gap]:
    """A timeline names each gap once (alert ids are unique)."""
    seen: dict[str, Gap] = {}
    for gap in found:
        seen.setdefault(alert_id("c1", gap), gap)
    return list(seen.values())


actions = subsets(ACS_ACTIONS)


# the config


def test_no_policy_is_every_default_with_the_hubs_gap_length() -> None:
    assert parse_lti(None) is None
    assert resolve(None, default_gap_s=42) == LtiPolicy(
        flag_alerts=frozenset({RECORDING_MISSING, RECORDING_FAILED, VIDEO_GAP}),
        flag_gap_s=42.0,
        flag_proctor_severities=frozenset({"high"}),
        extra_time_causes=frozenset({"peer_left_100ms"}),
    )


def test_a_member_given_replaces_its_default_only() -> None:
    stored = parse_lti({"flag_alerts": [], "extra_time_causes": ["socket_lost", "peer_left_100ms"]})
    assert stored == {"flag_alerts": [], "extra_time_causes": ["peer_left_100ms", "socket_lost"]}
    policy = resolve(stored, default_gap_s=60)
    assert policy.flag_alerts == frozenset() and policy.flag_gap_s == 60
    assert policy.flag_proctor_severities == {"high"}
    assert policy.extra_time_causes == {"peer_left_100ms", "socket_lost"}


@pytest.mark.parametrize(
    ("value", "member"),
    [
        ([], "lti"),
        ({"colour": 1}, "colour"),
        ({"flag_alerts": "video.gap"}, "flag_alerts"),
        ({"flag_alerts": ["proctor.shortage"]}, "flag_alerts"),
        ({"flag_gap_s": 0}, "flag_gap_s"),
        ({"flag_gap_s": True}, "flag_gap_s"),
        ({"flag_gap_s": "60"}, "flag_gap_s"),
        ({"flag_proctor_severities": ["urgent"]}, "flag_proctor_severities"),
        ({"extra_time_causes": ["observers_see_no_video"]}, "extra_time_causes"),
        ({"extra_time_causes": [1]}, "extra_time_causes"),
    ],
)
def test_a_bad_policy_names_its_member(value: Any, member: str) -> None:
    with pytest.raises(PolicyInvalid) as raised:
        parse_lti(value)
    assert raised.value.member == member


@given(subsets(FLAGGABLE_ALERTS), subsets(PROCTOR_SEVERITIES), subsets(GAP_CAUSES), st.floats(0.5, 86_400))
def test_every_valid_policy_round_trips(
    alerts: frozenset[str], severities: frozenset[str], causes: frozenset[str], gap_s: float
) -> None:
    given_ = {
        "flag_alerts": sorted(alerts),
        "flag_proctor_severities": sorted(severities),
        "extra_time_causes": sorted(causes),
        "flag_gap_s": gap_s,
    }
    stored = parse_lti(given_)
    assert stored is not None and parse_lti(stored) == stored
    assert resolve(stored, default_gap_s=1) == LtiPolicy(alerts, gap_s, severities, causes)


# what a timeline calls for


def requests(
    action: str, policy: LtiPolicy, found: list[Gap], since: float, offered: frozenset[str]
) -> dict[str, AcsRequest]:
    """The calls of one action the policy wants for a timeline of `found` gaps, by key."""
    due = timeline_due(policy, "c1", timeline_of(found), now=NOW, since=since, actions=offered)
    return {d.key: d.request for d in due if d.request.action == action}


attempts = (policies, st.lists(gaps(), max_size=8).map(unique_gaps), st.floats(0, NOW), actions)


@given(*attempts)
def test_flags_are_exactly_the_listed_alerts_long_enough_in_this_attempt(
    policy: LtiPolicy, found: list[Gap], since: float, offered: frozenset[str]
) -> None:
    flags = requests("flag", policy, found, since, offered)
    expected = {
        alert_id("c1", g): g
        for g in found
        if "flag" in offered
        and g.kind in policy.flag_alerts
        and not (g.end is not None and g.end < since)
        and (g.kind not in SPAN_KINDS or (g.end if g.end is not None else NOW) - g.start >= policy.flag_gap_s)
    }
    assert flags.keys() == expected.keys()
    for key, request in flags.items():
        gap = expected[key]
        assert (request.reason_code, request.incident_severity, request.at) == (
            gap.kind,
            ALERT_SEVERITY[gap.kind],
            gap.start,
        )
        assert request.reason_msg is not None and gap.cause in request.reason_msg


@given(*attempts)
def test_extra_time_is_the_closed_gaps_seconds_not_the_candidates_inside_the_attempt(
    policy: LtiPolicy, found: list[Gap], since: float, offered: frozenset[str]
) -> None:
    updates = requests("update", policy, found, since, offered)
    expected = {}
    for g in found:
        if "update" not in offered or g.kind != VIDEO_GAP or g.end is None:
            continue
        if g.cause not in policy.extra_time_causes or g.end < since:
            continue
        seconds = math.ceil(g.end - max(g.start, since) - 1e-9)
        if seconds > 0:
            expected[alert_id("c1", g)] = seconds
    assert {k: r.extra_time for k, r in updates.items()} == expected
    assert all(r.reason_code == VIDEO_GAP for r in updates.values())


def test_the_default_policy_on_a_story() -> None:
    """A 100ms drop of 73.2 s, the candidate's own camera off for 90 s, a short gap, a failed recording."""
    policy = resolve(None, default_gap_s=60)
    story = [
        Gap(VIDEO_GAP, "peer_left_100ms", 100.0, 173.2),
        Gap(VIDEO_GAP, "video_unpublished", 200.0, 290.0),
        Gap(VIDEO_GAP, "peer_left_100ms", 300.0, 320.0),
        Gap(RECORDING_FAILED, "recording_failed", 50.0, 400.0, peer_id="p1"),
    ]
    due = timeline_due(policy, "c1", timeline_of(story), now=500, since=10, actions=frozenset(ACS_ACTIONS))
    assert [(d.request.action, d.request.reason_code, d.request.extra_time) for d in due] == [
        ("flag", VIDEO_GAP, None),  # 73.2 s: long enough to flag, 100ms's: 74 s more
        ("update", VIDEO_GAP, 74),
        ("flag", VIDEO_GAP, None),  # the candidate's camera: flagged, no extra time
        ("update", VIDEO_GAP, 20),  # 20 s: too short to flag, but the time is given back
        ("flag", RECORDING_FAILED, None),
    ]
    only_flag = timeline_due(policy, "c1", timeline_of(story), now=500, since=10, actions=frozenset({"flag"}))
    assert {d.request.action for d in only_flag} == {"flag"}


# proctors' flags


@given(policies, st.sampled_from(PROCTOR_SEVERITIES), actions)
def test_a_proctor_flag_goes_on_when_its_severity_is_listed(
    policy: LtiPolicy, severity: str, offered: frozenset[str]
) -> None:
    flag = FlagRecord("f1", "lti-p-x", "c1", "pat", "phone on the desk", severity, 123.0)
    due = proctor_flag_due(policy, flag, actions=offered)
    if "flag" in offered and severity in policy.flag_proctor_severities:
        assert due is not None and due.key == "proctor:f1"
        request = due.request
        assert (request.action, request.reason_code, request.at) == ("flag", "proctor.flag", 123.0)
        assert due.request.reason_msg is not None and "phone on the desk" in due.request.reason_msg
        assert due.request.incident_severity is not None and 0 < due.request.incident_severity <= 1
    else:
        assert due is None
