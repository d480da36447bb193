"""Thousands of random and malformed frames, both codecs, many sockets: the hub keeps serving."""

from __future__ import annotations

import asyncio
import json
import random
import re

import msgpack
from websockets.exceptions import ConnectionClosed

from server.protocol import CLIENT_TYPES
from tests.client import JSON, MSGPACK, HubClient, login, open_client, token
from tests.conftest import SECRET

FIELDS = [
    *("id", "token", "candidate_id", "note", "severity", "text"),
    *("event_id", "room_id", "joined", "video", "audio"),
]
"""Field names of client messages: random data uses them so the fuzzer reaches the validation."""
DOCUMENTED_CLOSES = {1000, 1009, 4400, 4401, 4403, 4408, 4429}


def random_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 2**31, 2**63 - 1, -(2**63), rng.randrange(-1000, 1000)])
    if kind == 3:
        return rng.choice([0.5, -1e308, 1e-9, float(rng.random())])
    if kind == 4:
        return "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(0, 40)))
    if kind == 5:
        return rng.choice(["", "c1", "low", "*", "x" * 300])
    if kind == 6:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {
        rng.choice(("type", "data", *FIELDS)): random_value(rng, depth + 1)
        for _ in range(rng.randrange(0, 5))
    }


def random_message(rng: random.Random) -> dict[str, object]:
    msg_type = rng.choice([*sorted(CLIENT_TYPES), "nope", "", "auth.refresh", "warn"])
    data = (
        random_value(rng)
        if rng.random() < 0.3
        else {k: random_value(rng) for k in rng.sample(FIELDS, rng.randrange(0, 5))}
    )
    message: dict[str, object] = {"type": msg_type, "data": data}
    if rng.random() < 0.7:
        message["id"] = random_value(rng) if rng.random() < 0.2 else rng.randrange(1000)
    return message


def random_frame(rng: random.Random, codec: str) -> str | bytes:
    roll = rng.random()
    if roll < 0.15:
        return rng.randbytes(rng.randrange(1, 200))
    if roll < 0.25:
        return "".join(chr(rng.randrange(1, 0xD7FF)) for _ in range(rng.randrange(1, 100)))
    message = random_message(rng) if roll < 0.9 else random_value(rng)
    if codec == JSON:
        return json.dumps(message)
    return msgpack.packb(message)


async def fuzz_one(url: str, seed: int, frames: int) -> list[int | None]:
    """One fuzzing client: (re)connects, authenticates, throws frames; the close codes it got."""
    rng = random.Random(seed)
    codec = rng.choice([JSON, MSGPACK])
    role = rng.choice(["candidate", "proctor", "admin"])
    codes: list[int | None] = []
    sent = 0
    while sent < frames:
        client: HubClient
        client, _ = await login(url, token(SECRET, f"fuzz-{seed}", role, "fuzz"), codec)
        try:
            while sent < frames:
                await client.send_raw(random_frame(rng, codec))
                sent += 1
        except ConnectionClosed:
            pass
        codes.append(
            await client.closed_with(timeout=2) if not client.ws.close_code else client.ws.close_code
        )
        await client.close()
    return codes


async def test_random_frames_do_not_hurt_the_hub(hub_factory) -> None:
    hub = hub_factory(HUB_RATE_PER_S=100000, HUB_RATE_BURST=100000)
    bystander, _ = await login(hub.ws, token(SECRET, "bystander", "proctor", "fuzz"))
    results = await asyncio.gather(*(fuzz_one(hub.ws, seed, 150) for seed in range(24)))
    codes = {code for result in results for code in result}
    assert codes <= DOCUMENTED_CLOSES | {None}, codes
    assert 4400 in codes  # the fuzzer did reach the validation

    # The others were served throughout and still are.
    ping = await bystander.send("ping")
    assert (await bystander.expect("pong"))["re"] == ping
    _, hello = await login(hub.ws, token(SECRET, "after-fuzz", "candidate", "fuzz"), MSGPACK)
    assert hello["data"]["user_id"] == "after-fuzz"
    metrics = hub.metrics_text()
    errors = re.search(r"^proctorhub_handler_errors_total (\S+)$", metrics, re.M)
    assert errors is not None and float(errors.group(1)) == 0.0
    assert "Traceback" not in hub.log()
    assert hub.proc.poll() is None


async def test_garbage_before_auth_from_many_sockets(hub_factory) -> None:
    hub = hub_factory()
    rng = random.Random(7)

    async def one(i: int) -> int | None:
        client = await open_client(hub.ws, JSON if i % 2 else MSGPACK)
        await client.send_raw(random_frame(rng, client.codec))
        return await client.closed_with()

    codes = await asyncio.gather(*(one(i) for i in range(200)))
    assert set(codes) <= {4400, 4401}
    _, hello = await login(hub.ws, token(SECRET, "still-fine"))
    assert hello["type"] == "hello"
