"""Every close code and refusal of docs/protocol.md, against a real hub process."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time

import msgpack
import pytest

from tests.client import MSGPACK, login, open_client, token
from tests.conftest import SECRET
from tests.servers import HubProcess


async def test_no_auth_in_time_is_4408(hub_factory) -> None:
    hub = hub_factory(HUB_AUTH_TIMEOUT_S=0.5)
    client = await open_client(hub.ws)
    assert await client.closed_with() == 4408


@pytest.mark.parametrize(
    "first",
    [
        {"type": "ping", "data": {}},
        {"type": "auth", "data": {"token": "not-a-jwt"}},
        {"type": "auth", "data": {"token": token("wrong-secret" * 3, "c1")}},
        {"type": "auth", "data": {"token": token(SECRET, "c1", now=time.time() - 7200)}},
        {"type": "auth", "data": {"token": token(SECRET, "c1", role="admin", event="*")[:-4] + "AAAA"}},
    ],
    ids=["not-auth-first", "garbage-token", "wrong-key", "expired", "bad-signature"],
)
async def test_refused_first_message_is_4401(shared_hub: HubProcess, first: dict) -> None:
    client = await open_client(shared_hub.ws)
    await client.send_raw(json.dumps(first))
    assert await client.closed_with() == 4401


@pytest.mark.parametrize(
    "frame",
    ["{not json", "[1, 2]", '{"data": {}}', '{"type": "auth", "data": {"token": 5}}', '{"type": 7}'],
    ids=["not-json", "not-object", "no-type", "token-not-string", "type-not-string"],
)
async def test_malformed_first_frame_is_4400(shared_hub: HubProcess, frame: str) -> None:
    client = await open_client(shared_hub.ws)
    await client.send_raw(frame)
    assert await client.closed_with() == 4400


@pytest.mark.parametrize(
    "frame",
    [
        "{oops",
        '{"type": "ping", "id": "seven"}',
        '{"type": "ping", "data": []}',
        '{"type": "media.status", "data": {"room_id": null, "joined": "yes", "video": true, "audio": true}}',
        '{"type": "finish", "id": -1}',
    ],
)
async def test_malformed_frame_after_auth_is_4400(shared_hub: HubProcess, frame: str) -> None:
    client, _ = await login(shared_hub.ws, token(SECRET, "malformed-1", event="close-codes"))
    await client.send_raw(frame)
    assert await client.closed_with() == 4400


async def test_msgpack_in_text_frame_is_4400(shared_hub: HubProcess) -> None:
    client = await open_client(shared_hub.ws, MSGPACK)
    await client.send_raw('{"type": "auth"}')
    assert await client.closed_with() == 4400


@pytest.mark.parametrize(
    ("role", "msg_type", "data"),
    [
        ("candidate", "flag", {"candidate_id": "x", "note": "n", "severity": "low"}),
        ("candidate", "warn", {"candidate_id": "x", "text": "t"}),
        ("candidate", "subscribe", {"event_id": "close-codes"}),
        ("proctor", "finish", {}),
        ("admin", "media.status", {"room_id": None, "joined": False, "video": False, "audio": False}),
    ],
)
async def test_role_may_not_is_4403(shared_hub: HubProcess, role: str, msg_type: str, data: dict) -> None:
    client, _ = await login(shared_hub.ws, token(SECRET, f"{role}-4403", role=role, event="close-codes"))
    await client.send(msg_type, data)
    assert await client.closed_with() == 4403


async def test_admin_of_one_event_may_not_subscribe_to_another(shared_hub: HubProcess) -> None:
    client, _ = await login(shared_hub.ws, token(SECRET, "admin-a", role="admin", event="event-a"))
    await client.send("subscribe", {"event_id": "event-b"})
    assert await client.closed_with() == 4403


async def test_unknown_type_is_an_error_and_the_socket_stays_open(shared_hub: HubProcess) -> None:
    client, _ = await login(shared_hub.ws, token(SECRET, "unknown-1", event="close-codes"))
    sent = await client.send("teleport", {"where": "moon"})
    err = await client.expect("error", lambda m: m["data"]["code"] == "unknown_type")
    assert err["re"] == sent
    assert err["data"]["code"] == "unknown_type"
    ping = await client.send("ping")
    assert (await client.expect("pong"))["re"] == ping


async def test_frame_over_the_limit_is_1009(hub_factory) -> None:
    hub = hub_factory(HUB_MAX_MESSAGE_BYTES=2048)
    client, _ = await login(hub.ws, token(SECRET, "big-1"))
    await client.send("ping", {"pad": "x" * 4096})
    assert await client.closed_with() == 1009


async def test_too_many_messages_is_4429(hub_factory) -> None:
    hub = hub_factory(HUB_RATE_PER_S=5, HUB_RATE_BURST=10)
    client, _ = await login(hub.ws, token(SECRET, "chatty-1"))
    for _ in range(30):
        await client.send("ping")
    assert await client.closed_with() == 4429


async def test_origin_not_allowed_is_1008(hub_factory) -> None:
    hub = hub_factory(HUB_ALLOWED_ORIGINS="http://exam.example")
    refused = await open_client(hub.ws, additional_headers={"Origin": "http://evil.example"})
    assert await refused.closed_with() == 1008
    allowed = await open_client(hub.ws, additional_headers={"Origin": "http://exam.example"})
    await allowed.send("auth", {"token": token(SECRET, "origin-ok")})
    assert (await allowed.recv())["type"] == "hello"


async def test_session_expiring_then_4401(hub_factory) -> None:
    hub = hub_factory(HUB_SESSION_WARN_S=1.5)
    client, _ = await login(hub.ws, token(SECRET, "short-1", ttl_s=2))
    expiring = await client.expect("session.expiring")
    assert expiring["data"]["exp"] >= int(time.time())
    assert await client.closed_with(timeout=5) == 4401


async def test_auth_refresh_keeps_the_socket_open(hub_factory) -> None:
    hub = hub_factory(HUB_SESSION_WARN_S=1.5)
    client, _ = await login(hub.ws, token(SECRET, "refresh-1", ttl_s=2))
    await client.expect("session.expiring")
    mismatch = await client.send("auth.refresh", {"token": token(SECRET, "someone-else", ttl_s=600)})
    assert (await client.expect("error", lambda m: m["re"] == mismatch))["data"]["code"] == "session_mismatch"
    sent = await client.send("auth.refresh", {"token": token(SECRET, "refresh-1", ttl_s=600)})
    ok = await client.expect("auth.ok")
    assert ok["re"] == sent and ok["data"]["exp"] > time.time() + 500
    await asyncio.sleep(2.5)
    ping = await client.send("ping")
    assert (await client.expect("pong"))["re"] == ping


async def test_slow_consumer_is_1013(hub_factory) -> None:
    """A proctor that stops reading while flags pour in is closed 1013, not left to grow memory."""
    hub = hub_factory(HUB_SEND_QUEUE=64, HUB_SEND_TIMEOUT_S=1, HUB_RATE_PER_S=100000, HUB_RATE_BURST=100000)
    candidate, _ = await login(hub.ws, token(SECRET, "cand-slow"))
    small = socket.socket()
    small.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small, fixed window
    small.connect(("127.0.0.1", hub.port))
    stuck = await open_client(hub.ws, sock=small)
    await stuck.send("auth", {"token": token(SECRET, "stuck-proctor", role="proctor")})
    await stuck.expect("hello")
    stuck.ws.transport.pause_reading()  # stop reading at the TCP level: the hub's writes back up
    busy, _ = await login(hub.ws, token(SECRET, "busy-proctor", role="proctor"))
    flags, window = 3000, 16
    note = "n" * 2000
    # A healthy watcher keeps up: at most `window` of its flags unread, well under its queue of 64 (sent
    # all at once, the hub could outrun this test's own reader on a loaded machine and close it 1013).
    for _ in range(flags // window):
        for _ in range(window):
            await busy.send("flag", {"candidate_id": "cand-slow", "note": note, "severity": "low"})
        for _ in range(window):
            await busy.expect("flag.added", timeout=30)
    # The hub has handled every flag; the stuck proctor's writes are backed up.
    await asyncio.sleep(1.5)  # longer than HUB_SEND_TIMEOUT_S
    stuck.ws.transport.resume_reading()
    assert await stuck.closed_with(timeout=30) == 1013
    ping = await busy.send("ping")
    assert (await busy.expect("pong"))["re"] == ping, "the healthy proctor stays connected"
    await candidate.close()


async def test_sigterm_drains_with_1012(hub_factory) -> None:
    hub = hub_factory()
    client, _ = await login(hub.ws, token(SECRET, "drain-1"))
    hub.proc.terminate()
    assert await client.closed_with(timeout=10) == 1012
    # uvicorn re-raises the captured SIGTERM after its graceful shutdown
    assert hub.proc.wait(timeout=10) in (0, -15)
    assert "Traceback" not in hub.log()


def _raw_handshake(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    sock.sendall(
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(4096)
    assert response.startswith(b"HTTP/1.1 101")
    return sock


def _masked_text(payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    length = len(payload)
    header = bytes([0x81, 0x80 | length]) if length < 126 else bytes([0x81, 0xFE]) + length.to_bytes(2, "big")
    return header + mask + body


async def test_client_that_never_answers_pings_is_closed(hub_factory) -> None:
    """Server pings; a peer that never pongs is cut off after the heartbeat timeout."""
    hub = hub_factory(HUB_HEARTBEAT_S=0.5, HUB_HEARTBEAT_TIMEOUT_S=0.5)
    sock = _raw_handshake(hub.port)
    sock.sendall(
        _masked_text(json.dumps({"type": "auth", "data": {"token": token(SECRET, "mute-1")}}).encode())
    )
    sock.settimeout(5)
    received = b""
    started = time.monotonic()
    while time.monotonic() - started < 5:
        chunk = await asyncio.to_thread(sock.recv, 65536)
        if not chunk:
            break
        received += chunk
    sock.close()
    assert b"\x89" in received, "the hub never pinged"
    assert b"hello" in received
    close_at = received.rfind(b"\x88")
    assert close_at >= 0, "the hub never closed the silent socket"
    assert int.from_bytes(received[close_at + 2 : close_at + 4], "big") == 1011


async def test_msgpack_codec_end_to_end(shared_hub: HubProcess) -> None:
    client, hello = await login(shared_hub.ws, token(SECRET, "packer-1", event="close-codes"), codec=MSGPACK)
    assert hello["data"]["user_id"] == "packer-1"
    sent = await client.send("ping")
    pong = await client.expect("pong")
    assert pong["re"] == sent
    await client.send_raw(msgpack.packb({"type": "ping", "data": "nope"}))
    assert await client.closed_with() == 4400


def test_the_hub_runs_on_uvloop_and_httptools(hub_factory) -> None:
    """Both are dependencies (pyproject): a join storm's latency depends on them, so a hub that fell
    back to asyncio and h11 (a broken install) says so in its log, and this test sees it."""
    hub = hub_factory(LOG_LEVEL="INFO")
    assert "event loop: uvloop; HTTP parser: httptools" in hub.log()
