"""The proctor dashboard under a stream of statuses, measured inside the page (Chromium, Playwright).

    .venv/bin/python -m load_tests.benches.page_bench               # 50 candidates, 20 statuses/s, 60 s
    .venv/bin/python -m load_tests.benches.page_bench --candidates 50 --rate 20 --seconds 60

One hub (memory store, in-process 100ms simulator) and an event whose rooms all go to one proctor; the
proctor page (`/proctor#token=...&bench`) in Debian's headless Chromium; `--candidates` candidate sockets
(real hub clients) that, round-robin, turn their video on and off through `media.status` so the hub sends
`--rate` `candidate.status` per second to the page for `--seconds`. Inside the page, each status gets a
performance measure from the moment its frame reached hub.js's `onmessage` to the moment its tile was
updated (`tile-update`) and to the next animation frame, the one that paints it (`tile-frame`); a
PerformanceObserver counts long tasks (> 50 ms); the JS heap is read through
the DevTools protocol before and after the minute (and after a forced GC). Loopback only; stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from load_tests.benches.servers import start_hub
from load_tests.judge.stats import summary_ms
from load_tests.run.procs import RESULTS, kill_all
from server.auth import mint_session

CHROMIUM = "/usr/bin/chromium"
API_KEY = "page-bench-api-key-" + "k" * 16
EVENT = "page-bench"
OBSERVE_LONG_TASKS = """() => {
  window.__longTasks = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__longTasks.push([e.startTime, e.duration]);
  }).observe({ type: "longtask", buffered: true });
}"""
READ_MEASURES = "(name) => performance.getEntriesByName(name).map((e) => e.duration)"
VIDEO_ON = "document.querySelectorAll('.tile [data-field=video][data-state=on]').length"
SHOWN = "() => [...document.querySelectorAll('.tile [data-field=video]')].map((dd) => dd.textContent)"


def _token(secret: str, user: str, role: str) -> str:
    return mint_session(
        secret, user_id=user, event_id=EVENT, role=role, now=time.time(), ttl_s=3600, name=user
    )  # type: ignore[arg-type]


async def _drain(ws: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        async for _ in ws:
            pass


async def _candidate(url: str, tok: str) -> tuple[ClientConnection, str, asyncio.Task[None]]:
    ws = await connect(url, compression=None, open_timeout=30)
    await ws.send(json.dumps({"type": "auth", "data": {"token": tok}}))
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if message["type"] == "room.assign":
            await ws.send(json.dumps({"type": "ack", "data": {"id": message["id"]}}))
            return ws, message["data"]["room_id"], asyncio.create_task(_drain(ws))


def _media(room_id: str, video: bool) -> str:
    data = {"room_id": room_id, "joined": True, "video": video, "audio": False}
    return json.dumps({"type": "media.status", "data": data})


async def _heap(cdp: Any) -> int:
    metrics = await cdp.send("Performance.getMetrics")
    return int(next(m["value"] for m in metrics["metrics"] if m["name"] == "JSHeapUsedSize"))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    secret = secrets.token_urlsafe(32)
    RESULTS.mkdir(parents=True, exist_ok=True)
    hub = start_hub(
        "page-bench",
        secret,
        RESULTS / "page_bench_hub.log",
        extra_env={"HUB_API_KEY": API_KEY, "LOG_LEVEL": "WARNING"},
    )
    async with httpx.AsyncClient(base_url=hub.http, timeout=30) as http:
        body = {"event_id": EVENT, "name": "Page bench", "room_size": 10, "proctor_load": 100}
        created = await http.post("/api/v1/events", json=body, headers={"Authorization": f"Bearer {API_KEY}"})
        created.raise_for_status()
    from playwright.async_api import async_playwright  # a test extra: --help works without it

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--disable-background-networking", "--disable-component-update", "--disable-gpu"],
        )
        page = await browser.new_page(viewport={"width": 1600, "height": 1000})
        errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(f"{hub.http}/proctor#token={_token(secret, 'proctor-1', 'proctor')}&bench")
        await page.wait_for_function("() => document.querySelector('#conn').dataset.state === 'online'")
        await page.evaluate(OBSERVE_LONG_TASKS)
        cdp = await page.context.new_cdp_session(page)
        await cdp.send("Performance.enable")

        clients = await asyncio.gather(
            *(_candidate(hub.url, _token(secret, f"c{i:03d}", "candidate")) for i in range(args.candidates))
        )
        for ws, room_id, _ in clients:
            await ws.send(_media(room_id, True))
        await page.wait_for_function(
            f"() => {VIDEO_ON} === {args.candidates}",
            timeout=60000,
        )
        await page.evaluate("() => performance.clearMeasures()")
        await cdp.send("HeapProfiler.collectGarbage")
        heap_before = await _heap(cdp)
        minute_start = await page.evaluate("() => performance.now()")

        video = [True] * args.candidates
        interval = 1 / args.rate
        start = time.monotonic()
        sent = 0
        while (elapsed := time.monotonic() - start) < args.seconds:
            i = sent % args.candidates
            video[i] = not video[i]
            ws, room_id, _ = clients[i]
            await ws.send(_media(room_id, video[i]))
            sent += 1
            if sent % (args.rate * 10) == 0:
                print(f"  {elapsed:5.1f} s: {sent} statuses driven", flush=True)
            await asyncio.sleep(max(0.0, start + sent * interval - time.monotonic()))
        await asyncio.sleep(1.0)  # the last statuses land

        durations = await page.evaluate(READ_MEASURES, "tile-update")
        frames = await page.evaluate(READ_MEASURES, "tile-frame")
        tasks = await page.evaluate("() => window.__longTasks")
        long_tasks = [duration for start_ms, duration in tasks if start_ms >= minute_start]
        setup_tasks = [duration for start_ms, duration in tasks if start_ms < minute_start]
        heap_after = await _heap(cdp)
        await cdp.send("HeapProfiler.collectGarbage")
        heap_after_gc = await _heap(cdp)
        shown = await page.evaluate(SHOWN)
        expected = ["On" if v else "Off" for v in video]
        await browser.close()
    for ws, _, drain in clients:
        await ws.close()
        drain.cancel()
    hub.stop()
    return {
        "candidates": args.candidates,
        "rate_per_s": args.rate,
        "seconds": args.seconds,
        "statuses_driven": sent,
        "tile_update": summary_ms([d / 1000 for d in durations]),
        "tile_next_frame": summary_ms([d / 1000 for d in frames]),
        "long_tasks_while_joining": [round(d, 1) for d in setup_tasks],
        "long_tasks": {
            "count": len(long_tasks),
            "total_ms": round(sum(long_tasks), 1),
            "max_ms": round(max(long_tasks, default=0), 1),
        },
        "js_heap_mb": {
            "before": round(heap_before / 2**20, 2),
            "after_minute": round(heap_after / 2**20, 2),
            "after_minute_gc": round(heap_after_gc / 2**20, 2),
        },
        "tiles_match_last_status": sorted(shown) == sorted(expected),
        "console_errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m load_tests.benches.page_bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--rate", type=int, default=20, help="candidate.status per second, in total")
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args(argv)
    try:
        result = asyncio.run(run(args))
    finally:
        kill_all()
    t, f = result["tile_update"], result["tile_next_frame"]
    tasks, heap = result["long_tasks"], result["js_heap_mb"]
    print(
        f"\nproctor page, {result['candidates']} candidates, {result['rate_per_s']} statuses/s for "
        f"{result['seconds']:g} s ({result['statuses_driven']} driven, {t['n']} measured)\n"
        f"  message received -> tile updated: p50 {t['p50_ms']} ms, p99 {t['p99_ms']} ms, "
        f"max {t['max_ms']} ms\n"
        f"  message received -> next frame:   p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms, "
        f"max {f['max_ms']} ms\n"
        f"  long tasks in the minute: {tasks['count']} (total {tasks['total_ms']} ms, "
        f"max {tasks['max_ms']} ms); while the tiles were built: {result['long_tasks_while_joining']} ms\n"
        f"  JS heap: {heap['before']} MB before, {heap['after_minute']} MB after the minute, "
        f"{heap['after_minute_gc']} MB after a GC\n"
        f"  tiles show the last status: {result['tiles_match_last_status']}; console errors: "
        f"{len(result['console_errors'])}"
    )
    out = RESULTS / f"page_bench-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"  written to {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
