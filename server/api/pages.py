"""The pages people use (web/): their routes, their client config, and the security headers.

`/candidate`, `/proctor`, `/admin` and `/review` serve `web/<page>.html` (the bare paths work, the token
travels in the URL fragment so it never reaches a log). `/client-config.json` tells the pages which media
plane to use: the in-process simulator's (`/hms-sim/media`) or the 100ms Web SDK.

Every HTTP response carries a Content-Security-Policy without 'unsafe-inline': scripts and styles come
from files of this origin only, so text a user typed can never run even if a page mishandled it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.config import Settings

PAGES = ("candidate", "proctor", "admin", "review")
PUBLIC_DIRS = ("lib", "pages", "css", "vendor")
"""What of web/ is served: not package.json, node_modules/ or the tests."""
SIMULATOR_MEDIA = "/hms-sim/media"
HMS_SOURCES = ("https://*.100ms.live", "wss://*.100ms.live")
"""What the 100ms Web SDK talks to (signalling, init, analytics); only when real 100ms is configured."""


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def recording_sources(settings: Settings) -> tuple[str, ...]:
    """Where presigned recording URLs point: the S3 endpoint, or AWS S3 when only a bucket is set."""
    if not settings.s3_bucket:
        return ()
    if settings.s3_endpoint_url:
        return (_origin(settings.s3_endpoint_url),)
    return ("https://*.amazonaws.com",)


def content_security_policy(settings: Settings, host: str | None, form_targets: tuple[str, ...] = ()) -> str:
    """The policy for one response (pure). `host` is the request's Host, for the ws(s) of self;
    `form_targets` are origins a page may post a form to besides its own (the LTI launch page's platform)."""
    connect = ["'self'"]
    if host and all(c.isalnum() or c in ".-:[]" for c in host):
        connect += [f"ws://{host}", f"wss://{host}"]
    extra_workers: list[str] = []
    # A candidate page PUTs its backfill segments (E15) straight to the bucket's presigned URLs.
    connect += recording_sources(settings)
    if not settings.hms_simulated:
        connect += HMS_SOURCES
        extra_workers = ["blob:"]
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "media-src": ["'self'", "blob:", *recording_sources(settings)],
        "connect-src": connect,
        "worker-src": ["'self'", *extra_workers],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'", *form_targets],
        "frame-ancestors": list(settings.frame_ancestors),
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


class SecurityHeaders:
    """ASGI middleware: the CSP and a few safe defaults on every HTTP response."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"host"), None)
        added = [
            (b"content-security-policy", content_security_policy(self.settings, host).encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
        ]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", ())}
                extra = [(k, v) for k, v in added if k not in names]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def client_config(settings: Settings) -> dict[str, Any]:
    """What a page needs to know before it connects (nothing secret): the media plane, and how long
    the candidate page's local backfill segments are (E15; the page has defaults for the rest)."""
    backfill = {"segment_s": min(settings.backfill_segment_s, settings.backfill_segment_max_s)}
    if settings.hms_simulated:
        return {"media": "simulator", "media_base": SIMULATOR_MEDIA, "backfill": backfill}
    return {"media": "100ms", "media_base": None, "backfill": backfill}


def routes(settings: Settings, web_dir: Path) -> list[Route | Mount]:
    config = client_config(settings)

    def file(url: str, name: str, media_type: str) -> Route:
        path = web_dir / name

        async def serve(request: Request) -> Response:
            return FileResponse(path, media_type=media_type)

        return Route(url, serve, methods=["GET", "HEAD"])

    async def config_json(request: Request) -> Response:
        return JSONResponse(config, headers={"Cache-Control": "no-store"})

    html = "text/html; charset=utf-8"
    return [
        file("/", "index.html", html),
        *(file(f"/{name}", f"{name}.html", html) for name in PAGES if (web_dir / f"{name}.html").is_file()),
        file("/favicon.svg", "favicon.svg", "image/svg+xml"),
        Route("/client-config.json", config_json, methods=["GET"]),
        # vendor/ exists once scripts/_web.sh ran npm; until then its files are 404.
        *(Mount(f"/{d}", StaticFiles(directory=web_dir / d, check_dir=False)) for d in PUBLIC_DIRS),
    ]
