"""Browser tests: Debian's Chromium (never Playwright's download) driven by Playwright, one browser for the
session, a hub per module, the fake camera standing in for a webcam.

Every page a test opens goes through `pages.open`: its screenshot is saved under test-artifacts/ when the
test ends, and the test fails on any console error, uncaught exception or dialog, except the network
errors a test declares it expects (a restart refuses connections for a moment).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, Route, async_playwright

from server.auth import Role, mint_session
from tests.client import close_all
from tests.conftest import API_KEY, SECRET
from tests.servers import ROOT, HubProcess, start_hub

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    # No network here but loopback: keep Chromium from calling home at every start.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-gpu",
    "--no-first-run",
    # Pages of other origins are answered by the browser itself (Pages.open(serve=...)), so Chromium
    # counts them as public, and its Local Network Access checks would keep them off the loopback hub.
    "--disable-features=LocalNetworkAccessChecks",
]
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The browser lives in the session's event loop, so its tests run in that loop too."""
    marker = pytest.mark.asyncio(loop_scope="session")
    for item in items:
        if HERE in Path(str(item.path)).parents and pytest_asyncio.is_async_test(item):
            item.add_marker(marker, append=False)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="session", autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    """The root conftest's, in the session loop where these tests open their clients."""
    yield
    await close_all()


def hub_env(**settings: object) -> dict[str, str]:
    env = {
        "HUB_SECRET": SECRET,
        "HUB_API_KEY": API_KEY,
        "LOG_LEVEL": "WARNING",
        "HUB_PRESENCE_GRACE_S": "2",
        "HUB_STATS_INTERVAL_S": "0.2",
    }
    env.update({k: str(v) for k, v in settings.items()})
    return env


@pytest.fixture(scope="module")
def hub() -> Iterator[HubProcess]:
    """The module's hub: its own origin, plus http://exam.localhost, may open sockets and embed pages.

    Other origins are `*.localhost` pages the browser serves itself (`Pages.open(serve=...)`): secure
    contexts, as a host's https page would be (the camera needs one), and local to the hub on loopback."""
    process = start_hub(
        hub_env(
            HUB_ALLOWED_ORIGINS="http://exam.localhost", HUB_FRAME_ANCESTORS="'self' http://exam.localhost"
        )
    )
    yield process
    process.stop()


def session(event_id: str, user_id: str, role: Role, name: str | None = None, ttl_s: float = 3600) -> str:
    return mint_session(
        SECRET, user_id=user_id, event_id=event_id, role=role, now=time.time(), ttl_s=ttl_s, name=name
    )


def _fulfil(html: str) -> Callable[[Route], Awaitable[None]]:
    async def handler(route: Route) -> None:
        await route.fulfill(body=html, content_type="text/html")

    return handler


@dataclass
class Opened:
    label: str
    context: BrowserContext
    page: Page
    expected: tuple[str, ...]
    problems: list[str] = field(default_factory=list)


class Pages:
    """Opens pages for one test; screenshots and the console check when it ends."""

    def __init__(self, browser: Browser, test_name: str) -> None:
        self.browser = browser
        self.test_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
        self.opened: list[Opened] = []

    async def open(
        self,
        url: str,
        *,
        label: str | None = None,
        expect_errors: tuple[str, ...] = (),
        serve: dict[str, str] | None = None,
        prepare: Callable[[BrowserContext, Page], Awaitable[None]] | None = None,
    ) -> Page:
        """Open `url` in a fresh context. `expect_errors`: regexes of console errors this page may show;
        `serve`: {url glob: HTML} answered by the browser itself (a page of another origin); `prepare`:
        run before the page loads (listeners, DevTools overrides)."""
        context = await self.browser.new_context(viewport={"width": 1280, "height": 860})
        for pattern, html in (serve or {}).items():
            await context.route(pattern, _fulfil(html))
        page = await context.new_page()
        if prepare is not None:
            await prepare(context, page)
        opened = Opened(label or f"page{len(self.opened) + 1}", context, page, expect_errors)
        self.opened.append(opened)

        def console(message: ConsoleMessage) -> None:
            if message.type != "error":
                return
            text = f"{message.text} [{message.location.get('url', '')}]"
            if not any(re.search(p, text) for p in opened.expected):
                opened.problems.append(f"console error: {text}")

        page.on("console", console)
        page.on("pageerror", lambda exc: opened.problems.append(f"uncaught: {exc}"))

        async def dialog(d: object) -> None:
            opened.problems.append(f"dialog opened: {d.message}")  # type: ignore[attr-defined]
            await d.dismiss()  # type: ignore[attr-defined]

        page.on("dialog", dialog)
        await page.goto(url)
        return page

    def allow(self, page: Page, *patterns: str) -> None:
        """From now on `page` may also show console errors matching `patterns`."""
        for opened in self.opened:
            if opened.page is page:
                opened.expected = (*opened.expected, *patterns)

    async def close(self) -> list[str]:
        ARTIFACTS.mkdir(exist_ok=True)
        problems: list[str] = []
        for opened in self.opened:
            try:
                await opened.page.screenshot(
                    path=str(ARTIFACTS / f"{self.test_name}-{opened.label}.png"), full_page=True
                )
            finally:
                await opened.context.close()
            problems += [f"{opened.label}: {p}" for p in opened.problems]
        return problems


@pytest_asyncio.fixture(loop_scope="session")
async def pages(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Pages]:
    opened = Pages(browser, request.node.name)
    yield opened
    problems = await opened.close()
    assert not problems, "\n".join(problems)
