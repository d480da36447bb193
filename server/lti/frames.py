"""Launches inside an LMS frame whose browser keeps our cookies out.

The state cookie (server/lti/tool.py) binds a launch to the browser that started its login. Inside a
cross-site iframe, browsers that block third-party cookies (Safari, Firefox's strict mode, Chrome with
the setting, and every browser for a `SameSite=Lax` cookie over plain http) neither store nor send it,
so the launch would be refused. When the login arrives in a frame (`Sec-Fetch-Dest: iframe`), the hub
therefore answers a small page instead of the redirect: it sets the state cookie plus a readable check
cookie, and its script (web/pages/lti-login.js) goes on to the platform only if the check cookie was
kept; else it says so and offers the same login in a new window, where the cookie is first-party.
(LTI's platform storage, `lti_storage_target`, would keep the state in the platform's frame instead;
it is not implemented.)
"""

from __future__ import annotations

import html
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse

CHECK_COOKIE = "ph_lti_check"
LOGIN_PARAMS = (
    "iss",
    "login_hint",
    "target_link_uri",
    "lti_message_hint",
    "lti_deployment_id",
    "client_id",
)


def framed(request: Request) -> bool:
    """Whether the browser says this navigation loads inside a frame (all current browsers say it)."""
    return request.headers.get("sec-fetch-dest", "").lower() in ("iframe", "frame")


def new_window_login(params: dict[str, object]) -> str:
    """The same login as a same-origin URL, for a window of its own."""
    kept = {name: params[name] for name in LOGIN_PARAMS if isinstance(params.get(name), str)}
    return "/lti/login?" + urlencode(kept)


def cookie_check_page(next_url: str, new_window_url: str) -> HTMLResponse:
    """The page a framed login gets: on to `next_url` if cookies work here, else a way out."""
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>Starting the proctored exam</title>"
        '<link rel="stylesheet" href="/css/app.css">'
        '<script type="module" src="/pages/lti-login.js"></script></head><body>'
        f'<main class="card" id="lti-login" data-next="{html.escape(next_url)}">'
        "<h1>Starting the proctored exam…</h1>"
        '<div id="blocked" hidden>'
        "<p>Your browser keeps this proctoring tool's cookies out of your course page, so the exam "
        "cannot start inside it.</p>"
        f'<p><a id="new-window" href="{html.escape(new_window_url)}" '
        'target="_blank" rel="noopener">Open the exam in a new window</a></p>'
        '<p class="muted" id="continued" hidden>Go on in the new window; you can leave this page.</p>'
        "</div>"
        "<noscript><p>This page needs JavaScript.</p></noscript>"
        "</main></body></html>"
    )
    return HTMLResponse(body, headers={"Cache-Control": "no-store"})
