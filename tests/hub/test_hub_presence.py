"""Presence, state sync, warn, flag and stats on one real hub process."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any

from tests.client import login, token
from tests.conftest import SECRET, create_event
from tests.servers import HubProcess


def status_of(candidate: str, presence: str):
    return lambda m: m["data"]["candidate_id"] == candidate and m["data"]["presence"] == presence


async def test_tabs_count_as_one_user_and_grace_keeps_a_blip_quiet(shared_hub: HubProcess) -> None:
    event = "presence-tabs"
    create_event(shared_hub, event)
    proctor, _ = await login(shared_hub.ws, token(SECRET, "p1", "proctor", event))
    assert (await proctor.expect("roster"))["data"]["candidates"] == []
    tab1, hello = await login(shared_hub.ws, token(SECRET, "c1", event=event, name="Ada"))
    assert hello["data"]["user_id"] == "c1" and hello["data"]["role"] == "candidate"
    # The proctor gets c1's room (a new room: its `room.assign` and `roster` come after c1's seat).
    # Only from then on do c1's changes reach it as `candidate.status`; before, the roster carries them
    # (c1's arrival, announced before its seat, went to the admins and to no proctor: none was shown c1).
    roster = await proctor.expect(
        "roster", lambda m: [c["candidate_id"] for c in m["data"]["candidates"]] == ["c1"]
    )
    assert roster["data"]["candidates"][0]["name"] == "Ada"
    assert roster["data"]["candidates"][0]["presence"] == "online"
    tab2, _ = await login(shared_hub.ws, token(SECRET, "c1", event=event))
    await tab1.close()
    await tab2.send("ping")
    await tab2.expect("pong")
    # One tab is left: no change may reach the proctor. A warn still reaches the remaining tab.
    await proctor.send("warn", {"candidate_id": "c1", "text": "look at the screen"})
    warning = await tab2.expect("warning")
    assert warning["data"] == {"from": "p1", "text": "look at the screen"}
    await tab2.close()
    await proctor.expect("candidate.status", status_of("c1", "reconnecting"))
    back, _ = await login(shared_hub.ws, token(SECRET, "c1", event=event))
    await proctor.expect("candidate.status", status_of("c1", "online"))
    await asyncio.sleep(1.5)  # past the 1 s grace: nothing may turn it offline now
    await back.close()
    await proctor.expect("candidate.status", status_of("c1", "reconnecting"))
    await proctor.expect("candidate.status", status_of("c1", "offline"), timeout=5)
    seen = proctor.presences()
    # Before the roster, the seated "online" may or may not have found the room in the proctor's view.
    assert seen[-4:] == ["reconnecting", "online", "reconnecting", "offline"] and seen[:-4] in (
        [],
        ["online"],
    )


async def test_state_sync_on_reconnect_sends_the_current_roster(shared_hub: HubProcess) -> None:
    event = "presence-sync"
    create_event(shared_hub, event)
    candidate, _ = await login(shared_hub.ws, token(SECRET, "c-sync", event=event))
    await candidate.send("media.status", {"room_id": None, "joined": True, "video": True, "audio": True})
    await candidate.send("ping")  # the socket's frames are handled in order: the video is stored now
    await candidate.expect("pong")
    proctor, _ = await login(shared_hub.ws, token(SECRET, "p-sync", "proctor", event))
    roster = (await proctor.expect("roster"))["data"]["candidates"]
    assert [(c["candidate_id"], c["presence"]) for c in roster] == [("c-sync", "online")]
    assert roster[0]["video"] == "on" and roster[0]["room_id"]
    await proctor.close()
    await candidate.send("media.status", {"room_id": None, "joined": True, "video": False, "audio": True})
    await candidate.send("ping")
    await candidate.expect("pong")
    proctor, _ = await login(shared_hub.ws, token(SECRET, "p-sync", "proctor", event))
    roster = (await proctor.expect("roster"))["data"]["candidates"]
    assert [(c["candidate_id"], c["presence"], c["video"]) for c in roster] == [("c-sync", "online", "off")]
    # A finished candidate's seat is free: it leaves the rosters.
    await candidate.send("finish")
    emptied = await proctor.expect("roster", lambda m: not m["data"]["candidates"])
    assert emptied["data"]["candidates"] == []


async def test_a_seat_told_late_does_not_turn_a_reported_video_back(shared_hub: HubProcess) -> None:
    """A seat is answered before it is announced. A video report sent right after `hello` can be
    announced first: the seat's announcement that follows must carry that video, not the
    record as the seat wrote it (the admin would see the video turn back to unknown)."""
    event = "presence-late-seat"
    create_event(shared_hub, event)
    admin, _ = await login(shared_hub.ws, token(SECRET, "a-late", "admin", event))
    candidate, _ = await login(shared_hub.ws, token(SECRET, "c-late", event=event))
    await candidate.send("media.status", {"room_id": None, "joined": True, "video": True, "audio": True})
    await admin.expect("candidate.status", lambda m: m["data"]["video"] == "on")
    later: list[dict[str, Any]] = []
    with contextlib.suppress(TimeoutError):
        while len(later) < 50:  # what the admin hears next, until a second of quiet
            later.append(await admin.recv(timeout=1.0))
    videos = [m["data"]["video"] for m in later if m["type"] == "candidate.status"]
    assert all(video == "on" for video in videos), videos


async def test_finish_is_final_and_media_status_reaches_the_proctor(shared_hub: HubProcess) -> None:
    event = "presence-finish"
    create_event(shared_hub, event)
    proctor, _ = await login(shared_hub.ws, token(SECRET, "p", "proctor", event))
    candidate, _ = await login(shared_hub.ws, token(SECRET, "c", event=event))
    await proctor.expect("roster", lambda m: [c["candidate_id"] for c in m["data"]["candidates"]] == ["c"])
    await candidate.send("media.status", {"room_id": "r1", "joined": True, "video": True, "audio": False})
    on = await proctor.expect("candidate.status", lambda m: m["data"]["video"] == "on")
    assert on["data"]["presence"] == "online"
    await candidate.send("media.status", {"room_id": "r1", "joined": True, "video": False, "audio": False})
    await proctor.expect("candidate.status", lambda m: m["data"]["video"] == "off")
    await candidate.send("finish")
    await proctor.expect("candidate.status", status_of("c", "finished"))
    await candidate.close()
    again, _ = await login(shared_hub.ws, token(SECRET, "c", event=event))
    await again.send("ping")
    await again.expect("pong")
    await asyncio.sleep(0.3)
    presences = proctor.presences()
    assert presences[-1] == "finished" and "reconnecting" not in presences


async def test_flag_is_stored_and_shown_to_proctors_and_admins(shared_hub: HubProcess) -> None:
    event = "presence-flag"
    create_event(shared_hub, event)
    candidate, _ = await login(shared_hub.ws, token(SECRET, "c-flag", event=event))
    p1, _ = await login(shared_hub.ws, token(SECRET, "p1", "proctor", event))
    p2, _ = await login(shared_hub.ws, token(SECRET, "p2", "proctor", event))
    admin, _ = await login(shared_hub.ws, token(SECRET, "a", "admin", event))
    await p1.send("flag", {"candidate_id": "c-flag", "note": "second person in view", "severity": "high"})
    watching = p1 if (await p1.expect("roster"))["data"]["candidates"] else p2
    other = p2 if watching is p1 else p1
    for watcher in (p1, p2, admin):
        added = await watcher.expect("flag.added")
        assert added["data"]["candidate_id"] == "c-flag" and added["data"]["by"] == "p1"
        assert added["data"]["severity"] == "high" and added["data"]["note"] == "second person in view"
    # The new flag count reaches the admin and the proctor watching the candidate's room, no other.
    for watcher in (watching, admin):
        status = await watcher.expect("candidate.status", lambda m: m["data"]["flags"] == 1)
        assert status["data"]["candidate_id"] == "c-flag"
    unknown = await p1.send("flag", {"candidate_id": "nobody", "note": "n", "severity": "low"})
    assert (await p1.expect("error", lambda m: m["re"] == unknown))["data"]["code"] == "unknown_candidate"
    assert not [m for m in other.inbox if m["type"] == "candidate.status" and m["data"]["flags"] == 1]
    # The room's proctor, back after a blip, keeps its room and sees the flag count in its roster.
    name = "p1" if watching is p1 else "p2"
    await watching.close()
    back, _ = await login(shared_hub.ws, token(SECRET, name, "proctor", event))
    roster = (await back.expect("roster"))["data"]["candidates"]
    assert [(c["candidate_id"], c["flags"]) for c in roster] == [("c-flag", 1)]
    await candidate.close()


async def test_warn_to_a_candidate_who_is_not_connected_is_an_error(shared_hub: HubProcess) -> None:
    event = "presence-warn"
    candidate, _ = await login(shared_hub.ws, token(SECRET, "c-gone", event=event))
    await candidate.close()
    proctor, _ = await login(shared_hub.ws, token(SECRET, "p", "proctor", event))
    sent = await proctor.send("warn", {"candidate_id": "c-gone", "text": "hello?"})
    err = await proctor.expect("error", lambda m: m["re"] == sent)
    assert err["data"]["code"] == "candidate_not_connected"


async def test_admin_sees_event_stats_live_and_can_subscribe_to_any_event(shared_hub: HubProcess) -> None:
    event = "presence-stats"
    admin, _ = await login(shared_hub.ws, token(SECRET, "a", "admin", event))
    first = await admin.expect("event.stats")
    assert first["data"]["online"] == 0 and first["data"]["event_id"] == event
    proctor, _ = await login(shared_hub.ws, token(SECRET, "p", "proctor", event))
    candidates = [(await login(shared_hub.ws, token(SECRET, f"c{i}", event=event)))[0] for i in range(3)]
    stats = await admin.expect(
        "event.stats", lambda m: m["data"]["online"] == 3 and m["data"]["proctors"] == 1
    )
    await candidates[0].send("finish")
    await candidates[1].close()
    stats = await admin.expect(
        "event.stats", lambda m: m["data"]["finished"] == 1 and m["data"]["reconnecting"] == 1
    )
    assert stats["data"]["online"] == 1
    await admin.expect("candidate.status", status_of("c1", "reconnecting"))
    overseer, _ = await login(shared_hub.ws, token(SECRET, "root", "admin", "*"))
    sent = await overseer.send("subscribe", {"event_id": event})
    snapshot = await overseer.expect("event.stats", lambda m: m["re"] == sent)
    assert snapshot["data"]["finished"] == 1 and snapshot["data"]["proctors"] == 1
    await candidates[2].close()
    await overseer.expect("candidate.status", status_of("c2", "reconnecting"))
    await proctor.close()


async def test_event_stats_go_out_only_when_a_count_changes(shared_hub: HubProcess) -> None:
    """A camera toggled is news for the admins' candidate list, not for the counts: pushing the
    same counts again to every admin doubled the cost of each such fan-out."""
    event = "presence-stats-changes"
    admin, _ = await login(shared_hub.ws, token(SECRET, "a", "admin", event))
    await admin.expect("event.stats")
    candidate, _ = await login(shared_hub.ws, token(SECRET, "c", event=event))
    await admin.expect("event.stats", lambda m: m["data"]["online"] == 1)
    for k in range(4):
        video = k % 2 == 0
        await candidate.send("media.status", {"room_id": None, "joined": True, "video": video, "audio": True})
        shown = "on" if video else "off"
        await admin.expect("candidate.status", lambda m, v=shown: m["data"]["video"] == v)
        await asyncio.sleep(0.3)  # longer than the hub's stats interval (0.2 s): a push was due
    await candidate.send("finish")
    await admin.expect("event.stats", lambda m: m["data"]["finished"] == 1)
    pushed = [m["data"] for m in admin.inbox if m["type"] == "event.stats"]
    assert all(earlier != later for earlier, later in itertools.pairwise(pushed)), pushed


async def test_a_video_change_reaches_watchers_once_with_the_monitors_verdict(shared_hub: HubProcess) -> None:
    """Video and recording state come in one `candidate.status`: never a record where they disagree."""
    event = "presence-video-once"
    admin, _ = await login(shared_hub.ws, token(SECRET, "a", "admin", event))
    candidate, _ = await login(shared_hub.ws, token(SECRET, "c", event=event))
    await admin.expect("candidate.status", status_of("c", "online"))
    for k in range(4):
        shown = "on" if k % 2 == 0 else "off"
        before = len(admin.inbox)
        media = {"room_id": None, "joined": True, "video": shown == "on", "audio": True}
        await candidate.send("media.status", media)
        await candidate.send("ping")
        await candidate.expect("pong")  # the report is handled: its announcements are written
        await admin.send("ping")
        await admin.expect("pong")
        statuses = [m["data"] for m in admin.inbox[before:] if m["type"] == "candidate.status"]
        assert [(s["video"], s["recording"]) for s in statuses] == [(shown, shown)], statuses


async def test_proctors_coming_and_going_reach_admins_only(shared_hub: HubProcess) -> None:
    event = "presence-proctors"
    admin, _ = await login(shared_hub.ws, token(SECRET, "a", "admin", event))
    first, _ = await login(shared_hub.ws, token(SECRET, "p1", "proctor", event))
    second, _ = await login(shared_hub.ws, token(SECRET, "p2", "proctor", event))
    online = await admin.expect("proctor.status", lambda m: m["data"]["user_id"] == "p2")
    assert online["data"]["presence"] == "online"
    await second.close()
    gone = await admin.expect("proctor.status", lambda m: m["data"]["presence"] == "reconnecting")
    assert gone["data"]["user_id"] == "p2"
    await first.send("ping")
    await first.expect("pong")
    assert not [m for m in first.inbox if m["type"] == "proctor.status"]


async def test_an_event_never_created_gets_presence_but_no_room(shared_hub: HubProcess) -> None:
    admin, _ = await login(shared_hub.ws, token(SECRET, "a", "admin", "made-up-event"))
    candidate, _ = await login(shared_hub.ws, token(SECRET, "c", event="made-up-event"))
    refusal = await candidate.expect("error")
    assert refusal["data"]["code"] == "event_unknown"
    await admin.expect("candidate.status", lambda m: m["data"]["presence"] == "online")
    await candidate.send("ping")
    await candidate.expect("pong")
    assert not [m for m in candidate.inbox if m["type"] == "room.assign"]
