"""The batching Redis client against a real redis-server: each call its own reply, fewer connections.

The join storm's speed on Redis comes from sending the commands of one loop turn as one pipeline
(server/store/redis/batching.py); these tests check that nothing a caller can see changes: replies
and errors go to their own callers, a flushed script is loaded again, a blocking read never holds up
the batch, and the commands really share connections.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
import uvloop
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import DataError, RedisError, ResponseError

from server.store.records import ConnRef, EventConfig
from server.store.redis import RedisStore
from server.store.redis.batching import BatchingRedis
from server.store.redis.connection import Script, connect, flat, kept_writes, script
from tests.conftest import flush
from tests.polling import eventually
from tests.servers import RedisServer


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    await flush(redis_server.url)
    redis = connect(redis_server.url)
    try:
        yield redis
    finally:
        await redis.aclose(close_connection_pool=True)


async def test_concurrent_calls_get_their_own_replies_and_errors(client: aioredis.Redis) -> None:
    await client.set("text", "not a list")
    await client.hset("h", mapping={"a": "1", "b": "2"})

    async def ask(i: int) -> object:
        if i % 3 == 0:
            return await client.incr(f"n{i}")
        if i % 3 == 1:
            return await client.hgetall("h")
        return await client.lpush("text", "x")  # WRONGTYPE: this call's error only

    results = await asyncio.gather(*(ask(i) for i in range(300)), return_exceptions=True)
    for i, result in enumerate(results):
        if i % 3 == 0:
            assert result == 1
        elif i % 3 == 1:
            assert result == {b"a": b"1", b"b": b"2"}
        else:
            assert isinstance(result, ResponseError) and "WRONGTYPE" in str(result)


async def test_a_flushed_script_is_loaded_again_inside_a_batch(client: aioredis.Redis) -> None:
    add = client.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    assert await add(keys=["s"], args=[1]) == 1
    await client.script_flush()  # as a Redis restart would
    results = await asyncio.gather(*(add(keys=["s"], args=[1]) for _ in range(50)))
    assert sorted(results) == list(range(2, 52))


async def test_a_flushed_script_is_loaded_once_for_all_the_callers_that_met_noscript(
    client: aioredis.Redis,
) -> None:
    """A Redis restart under a join storm: every call in flight meets NOSCRIPT, one of them loads
    the script and the others wait for that load (redis-py's own script loads it once per caller)."""
    add = Script(client, "return redis.call('INCRBY', KEYS[1], ARGV[1])")
    assert await add(keys=["s"], args=[1]) == 1
    await client.script_flush()
    await client.config_resetstat()
    results = await asyncio.gather(*(add(keys=["s"], args=[1]) for _ in range(50)))
    assert sorted(results) == list(range(2, 52))
    stats = await client.info("commandstats")
    assert stats["cmdstat_script|load"]["calls"] == 1
    assert stats["cmdstat_evalsha"]["calls"] == 100  # each call: the NOSCRIPT, then its answer


async def test_a_noscript_loads_every_script_of_the_client_again(client: aioredis.Redis) -> None:
    owner, renew = script(client, "lock_owner"), script(client, "renew_lock")
    await client.script_flush()  # as a Redis restart would: every script is gone, not only one
    assert await owner(keys=["ph:lock:x"], args=[1.0]) is None
    assert await client.script_exists(owner.sha, renew.sha) == [True, True]


async def test_a_ready_store_has_every_script_loaded(redis_server: RedisServer) -> None:
    """The readiness check loads every script, so an exam's first arrivals meet no NOSCRIPT."""
    await flush(redis_server.url)
    admin = aioredis.Redis.from_url(redis_server.url)
    store = RedisStore(redis_server.url)
    try:
        await admin.script_flush()
        await admin.config_resetstat()
        await store.ping()
        assert await store.events.create_event(EventConfig("e1", "Maths"))
        await store.presence.connect(ConnRef("e1", "u1", "c1", "n1"), role="candidate", name="Ann", now=5.0)
        assert await store.locks.acquire_lock("l", "n1", now=5.0, ttl_s=10) is not None
        assert "errorstat_NOSCRIPT" not in await admin.info("errorstats")
        loads = (await admin.info("commandstats"))["cmdstat_script|load"]["calls"]
        assert loads > 20  # every script of every concept, in the first probe
        await store.ping()  # loaded once: a readiness probe is not a reload
        assert (await admin.info("commandstats"))["cmdstat_script|load"]["calls"] == loads
    finally:
        await store.close()
        await admin.aclose()


async def test_a_blocking_read_does_not_hold_up_other_commands(client: aioredis.Redis) -> None:
    await client.xgroup_create("stream", "g", id="0", mkstream=True)
    waiting = asyncio.create_task(client.xreadgroup("g", "c", {"stream": ">"}, count=1, block=0))
    await asyncio.sleep(0.05)
    # Issued while the read blocks (forever, until an entry comes): each must still be answered.
    assert await asyncio.wait_for(asyncio.gather(*(client.ping() for _ in range(20))), 10)
    await client.xadd("stream", {"f": "v"})
    reply = await asyncio.wait_for(waiting, 10)
    assert reply[0][1][0][1] == {b"f": b"v"}


async def test_commands_of_one_turn_share_a_connection(redis_server: RedisServer) -> None:
    name = f"batching-{secrets.token_hex(4)}"
    pool = aioredis.BlockingConnectionPool.from_url(redis_server.url, max_connections=64, client_name=name)
    redis = BatchingRedis(connection_pool=pool)
    try:
        await asyncio.gather(*(redis.get(f"k{i}") for i in range(500)))
        # One at a time they would each check out a pooled connection (up to the pool's 64).
        listed = await redis.client_list()
        assert sum(1 for c in listed if c["name"] == name) in (1, 2)
    finally:
        await redis.aclose(close_connection_pool=True)


async def test_a_cancelled_caller_leaves_the_others_answered(client: aioredis.Redis) -> None:
    calls = [asyncio.ensure_future(client.incr("counted")) for _ in range(10)]
    calls[3].cancel()
    done = await asyncio.gather(*calls, return_exceptions=True)
    answered = [r for r in done if not isinstance(r, BaseException)]
    assert len(answered) >= 9 and len(set(answered)) == len(answered)
    assert int(await client.get("counted")) >= 9


def test_a_client_outlives_the_loop_it_was_first_used_in(redis_server: RedisServer) -> None:
    redis = connect(redis_server.url)

    async def issue() -> asyncio.Task[int]:
        return asyncio.ensure_future(redis.incr("loops"))

    first = asyncio.new_event_loop()
    left = first.run_until_complete(issue())  # the command is queued, its flush never runs
    first.close()

    async def used_again() -> int:
        try:
            return int(await asyncio.wait_for(redis.incr("loops"), 10))
        finally:
            await redis.aclose(close_connection_pool=True)

    assert asyncio.run(used_again()) == 1
    assert not left.done()


async def test_kept_writes_apply_every_write_and_keep_every_key(client: aioredis.Redis) -> None:
    """The MULTI/EXEC replacement: each write's reply in order, every key written gets the TTL,
    and a failing write (WRONGTYPE) fails the call instead of passing silently."""
    run = script(client, "kept_writes")
    await client.set("plain", "x")
    replies = await kept_writes(
        run,
        600,
        [
            ("s", "SADD", [b"a", b"b"]),
            ("h", "HSET", flat({"f": b"1", "g": b"2"})),
            ("s", "SREM", [b"a", b"zz"]),
        ],
    )
    assert replies == [2, 2, 1]
    assert await client.smembers("s") == {b"b"}
    assert await client.hgetall("h") == {b"f": b"1", b"g": b"2"}
    for key in ("s", "h"):
        assert 590 < await client.ttl(key) <= 600
    assert await client.ttl("plain") == -1
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await kept_writes(run, 600, [("plain", "SADD", [b"a"])])


async def test_connections_killed_mid_batch_leave_no_caller_waiting(
    client: aioredis.Redis, redis_server: RedisServer
) -> None:
    """Redis drops the node's connections while batches are in flight: every caller gets its reply
    (the unanswered rest is sent again on a new connection) or an error, none waits forever, and
    the client works afterwards."""
    killer = aioredis.from_url(redis_server.url)
    try:
        for round_ in range(5):
            calls = [asyncio.ensure_future(client.incr(f"k{round_}")) for _ in range(400)]
            await asyncio.sleep(0)
            await killer.client_kill_filter(_type="normal", skipme=True)
            results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 30)
            answered = [r for r in results if not isinstance(r, BaseException)]
            assert all(isinstance(r, int) for r in answered)
            assert all(isinstance(r, ConnectionError | RedisError) for r in results if r not in answered)
            counted = int(await killer.get(f"k{round_}") or 0)
            assert len(answered) <= counted  # a command sent again after a lost reply may count twice
        assert await client.incr("after") == 1
    finally:
        await killer.aclose()


async def test_a_bad_argument_fails_its_own_call_only(client: aioredis.Redis) -> None:
    good = [client.incr("n") for _ in range(20)]
    bad = client.set("k", True)  # type: ignore[arg-type]  # redis-py refuses bools
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert sorted(results[:20]) == list(range(1, 21))  # type: ignore[type-var]
    assert isinstance(results[20], DataError)


async def _turns_on_one_connection(url: str) -> None:
    name = f"pipelined-{secrets.token_hex(4)}"
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=64, client_name=name)
    redis = BatchingRedis(connection_pool=pool)
    try:
        calls = []
        for turn in range(30):
            calls += [asyncio.ensure_future(redis.incr(f"{name}:{turn}")) for _ in range(10)]
            await asyncio.sleep(0)
        assert await asyncio.gather(*calls) == [n for _ in range(30) for n in range(1, 11)]
        listed = await redis.client_list()
        assert sum(1 for c in listed if c["name"] == name) == 1
    finally:
        await redis.aclose(close_connection_pool=True)


async def test_turns_in_flight_share_one_connection(redis_server: RedisServer) -> None:
    """A turn's commands go out while the turn before still waits for its replies, on the same
    connection (a batch holding a pooled connection until its replies came took a new one each)."""
    await _turns_on_one_connection(redis_server.url)


def test_turns_share_one_connection_on_uvloop(redis_server: RedisServer) -> None:
    """The same on uvloop, the loop the hub serves on: its transports are not asyncio's classes, and
    a command connection that could not be kept sent every turn through the pool instead."""
    uvloop.run(_turns_on_one_connection(redis_server.url))


async def test_a_redis_that_stops_answering_fails_the_callers_within_the_socket_timeout(
    redis_server: RedisServer,
) -> None:
    """Commands wait on one connection with no read of their own to time out: when Redis answers
    nothing for the socket timeout, they are failed (after redis-py's path tried again), not left
    waiting, and the client works once Redis does."""
    pool = aioredis.BlockingConnectionPool.from_url(
        redis_server.url, socket_timeout=0.5, retry=Retry(NoBackoff(), 1)
    )
    redis = BatchingRedis(connection_pool=pool)
    admin = aioredis.from_url(redis_server.url)
    try:
        assert await redis.incr("before") == 1  # the command connection is open
        # Every client paused for 5 s (an UNPAUSE would wait too). The callers are failed after about
        # 1.5 s: the command connection's 0.5 s, then two tries on redis-py's path of 0.5 s each.
        await admin.execute_command("CLIENT", "PAUSE", "5000", "ALL")
        results = await asyncio.wait_for(
            asyncio.gather(*(redis.incr("during") for _ in range(5)), return_exceptions=True), 10
        )
        assert all(isinstance(r, RedisError) for r in results), results

        async def answering() -> bool:
            try:
                return await redis.get("before") == b"1"
            except RedisError:
                return False

        await eventually(answering, what="the client answers once Redis does", interval=0.2)
        assert await redis.incr("after") == 1
    finally:
        await admin.aclose()
        await redis.aclose(close_connection_pool=True)
