from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from hypothesis import settings

from server.store.base import Store
from server.store.memory import MemoryStore
from server.store.redis import RedisStore
from tests.archive_support import aws_env, no_aws_env  # noqa: F401  (fixtures: AWS credentials or none)
from tests.client import close_all
from tests.s3 import s3_server  # noqa: F401  (a session fixture: moto's S3 server)
from tests.servers import HubProcess, RedisServer, start_hub, start_redis

# Loaded here, at collection: Python 3.11.7's parser can fail when hypothesis is first imported
# from pytest's terminal summary, deep in a stack of import hooks.
settings.register_profile("proctorhub", deadline=None, print_blob=True)
settings.load_profile("proctorhub")

pytest_plugins = ["tests.hang_report"]

LEVELS = {"unit": "unit", "hub": "hub", "scenarios": "slow", "browser": "browser"}
"""tests/<folder> -> the marker its tests carry (`-m "not slow"`, `-m browser`, ...)."""


FIRST = ("scenarios", "browser", "hub", "unit")
"""The order the folders run in: longest files first, so the two workers of `scripts/test` (files
handed out in collection order, `--no-loadscope-reorder`) end together on the many short unit files,
not one of them on a minute-long scenario while the other idles."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    root = Path(__file__).resolve().parent
    levels: dict[int, int] = {}
    for item in items:
        level = Path(str(item.path)).resolve().relative_to(root).parts[0]
        if level in LEVELS:
            item.add_marker(LEVELS[level])
        levels[id(item)] = FIRST.index(level) if level in FIRST else len(FIRST)
    items.sort(key=lambda item: levels[id(item)])


SECRET = "test-secret-" + "x" * 24
API_KEY = "test-api-key-" + "y" * 24

HubFactory = Callable[..., HubProcess]


def create_event(hub: HubProcess, event_id: str, **config: object) -> None:
    """POST an event to a running hub with the API key; fails the test if refused."""
    body = {"event_id": event_id, "name": event_id, **config}
    response = httpx.post(
        f"{hub.http}/api/v1/events", json=body, headers={"Authorization": f"Bearer {API_KEY}"}
    )
    assert response.status_code == 201, response.text


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    server.stop()


async def flush(url: str) -> None:
    """Empty a test Redis (FLUSHDB)."""
    client = aioredis.Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """Each store backend in turn (Redis emptied first): for the contract suite and the inbox tests."""
    if request.param == "memory":
        backend: Store = MemoryStore()
    else:
        url = request.getfixturevalue("redis_server").url
        await flush(url)
        backend = RedisStore(url)
    await backend.start()
    try:
        yield backend
    finally:
        await backend.close()


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    await close_all()


@pytest.fixture
def hub_factory() -> Iterator[HubFactory]:
    """Start hub processes with settings of the test's choosing; all are stopped afterwards."""
    started: list[HubProcess] = []

    def start(**settings: object) -> HubProcess:
        env = {"HUB_SECRET": SECRET, "HUB_API_KEY": API_KEY, "LOG_LEVEL": "WARNING"}
        env.update({k: str(v) for k, v in settings.items()})
        hub = start_hub(env)
        started.append(hub)
        return hub

    yield start
    for hub in started:
        hub.stop()


@pytest.fixture(scope="module")
def shared_hub() -> Iterator[HubProcess]:
    """One hub for tests that do not depend on special settings (each test uses its own event id)."""
    hub = start_hub(
        {
            "HUB_SECRET": SECRET,
            "HUB_API_KEY": API_KEY,
            "LOG_LEVEL": "WARNING",
            "HUB_PRESENCE_GRACE_S": "1",
            "HUB_STATS_INTERVAL_S": "0.2",
        }
    )
    yield hub
    hub.stop()
