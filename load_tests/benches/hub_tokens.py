"""The `tokens` scenario: N candidates hold their sockets while the hub keeps their 100ms tokens fresh.

One event is created over the HTTP API (`token_ttl_s`, `room_size`), so the hub makes its rooms
through the in-process 100ms simulator as the candidates connect. Every lean client keeps the
newest token of each `room.assign`/`token.refresh`, checks the JWT's `exp` against `token_exp`
and acks at once (token_watch.py); each worker checks every second that no open client's newest
token has expired. The main process samples the hub's CPU and RSS every second and reads its
token counters and margin histogram from /metrics at the start and end of the hold.

CPU per refresh = (hub CPU over the hold - idle rate x hold) / refreshes the hub sent in the hold.
The idle rate is measured on the same sockets between the end of the connects (+2 s) and the
first refresh any client received (tokens minted at connect are renewed a third of their
lifetime, minus up to half that, before `exp`: at least ~30 s later with a 60 s lifetime).
At the end a token from every N/10-th client joins the simulator's media plane
(`POST /hms-sim/media/join` must answer 200) and the peer leaves again.
"""

from __future__ import annotations

import asyncio
import math
import time
from bisect import bisect_left
from typing import Any

import httpx

from load_tests.benches.hub_scenarios import Options, Target, close_all, open_many, pool_status, progress
from load_tests.judge.stats import max_in_window, percentile
from load_tests.users.worker_pool import WorkerPool
from server.auth import Role

EVENT_ID = "bench-tokens"
TOKEN_METRICS = ("proctorhub_token", "proctorhub_tokens_minted", "proctorhub_room_assign_failures")
IDLE_SETTLE_S = 2.0  # after the last connect, before the idle window opens
MIN_IDLE_WINDOW_S = 3.0
SUMMED = (  # the workers' TokenLog counters that add up
    "assigns",
    "refreshes",
    "new_tokens",
    "repeats",
    "stale",
    "acks",
    "exp_mismatch",
    "room_mismatch",
    "checked_client_s",
    "expired_client_s",
    "tokenless_client_s",
)


class Sampler:
    """The hub's CPU seconds and RSS (all its nodes), once a second, while it runs."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.samples: list[tuple[float, float, int]] = []  # (time, cpu_s, rss_kib)

    async def run(self) -> None:
        while True:
            self.samples.append((time.time(), self.target.cpu_s(), self.target.rss_kib()))
            await asyncio.sleep(1.0)

    def cpu_at(self, t: float) -> float:
        """CPU seconds at time `t`, interpolated between the samples around it."""
        times = [s[0] for s in self.samples]
        i = min(max(bisect_left(times, t), 1), len(times) - 1)
        (t0, c0, _), (t1, c1, _) = self.samples[i - 1], self.samples[i]
        return c0 + (c1 - c0) * (t - t0) / (t1 - t0) if t1 > t0 else c1

    def rss_between(self, start: float, end: float) -> list[int]:
        return [rss for t, _, rss in self.samples if start <= t <= end]


def _summed(per_node: dict[str, dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for samples in per_node.values():
        for name, value in samples.items():
            out[name] = out.get(name, 0.0) + value
    return out


def _margin_histogram(metrics: dict[str, float]) -> dict[str, Any]:
    """The hub's `proctorhub_token_margin_seconds`: cumulative buckets, count, mean, bucket of p1/p50."""
    prefix = 'proctorhub_token_margin_seconds_bucket{le="'
    buckets = sorted(
        (float(name[len(prefix) : -2]), value) for name, value in metrics.items() if name.startswith(prefix)
    )
    count = metrics.get("proctorhub_token_margin_seconds_count", 0.0)
    total = metrics.get("proctorhub_token_margin_seconds_sum", 0.0)

    def upper_bound(q: float) -> float:
        return next((le for le, n in buckets if count and n >= q * count), math.nan)

    return {
        "count": int(count),
        "mean_s": round(total / count, 2) if count else math.nan,
        "p1_at_most_s": upper_bound(0.01),
        "p50_at_most_s": upper_bound(0.5),
        "at_most_0_s": int(next((n for le, n in buckets if le == 0), 0)),
        "at_most_10_s": int(next((n for le, n in buckets if le == 10), 0)),
        "buckets": {str(le): int(n) for le, n in buckets},
    }


async def _create_event(target: Target, opts: Options) -> dict[str, Any]:
    body = {
        "event_id": EVENT_ID,
        "name": "bench: token refresh",
        "token_ttl_s": opts.token_ttl_s,
        "room_size": opts.room_size,
        "expected_candidates": opts.sockets,
    }
    headers = {"Authorization": f"Bearer {target.api_key}"}
    async with httpx.AsyncClient(timeout=10) as http:
        reply = await http.post(f"{target.servers[0].http}/api/v1/events", json=body, headers=headers)
    if reply.status_code != 201:
        raise RuntimeError(f"creating the event answered {reply.status_code}: {reply.text[:300]}")
    created: dict[str, Any] = reply.json()
    return created


async def _media_join(target: Target, tokens: list[str]) -> dict[str, Any]:
    """Join the simulator's media plane with each token (must be 200), then leave again."""
    base = f"{target.servers[0].http}/hms-sim/media"
    codes: dict[str, int] = {}
    refusals: list[str] = []
    async with httpx.AsyncClient(timeout=10) as http:
        for token in tokens:
            reply = await http.post(f"{base}/join", json={"token": token, "user_name": "bench"})
            codes[str(reply.status_code)] = codes.get(str(reply.status_code), 0) + 1
            if reply.status_code != 200:
                refusals.append(reply.text[:200])
                continue
            await http.post(f"{base}/peers/{reply.json()['peer_id']}/leave")
    return {"tried": len(tokens), "ok": codes.get("200", 0), "codes": codes, "refusals": refusals[:5]}


def _idle_rate(sampler: Sampler, connected: float, first_refresh: float | None) -> dict[str, Any]:
    """Hub cores used by the held sockets before any refresh (None if that window is too short)."""
    start = connected + IDLE_SETTLE_S
    end = (first_refresh if first_refresh is not None else time.time()) - 0.1
    window = [s for s in sampler.samples if start <= s[0] <= end]
    if len(window) < 2 or window[-1][0] - window[0][0] < MIN_IDLE_WINDOW_S:
        return {"cores": None, "window_s": round(max(end - start, 0.0), 1)}
    span = window[-1][0] - window[0][0]
    return {"cores": (window[-1][1] - window[0][1]) / span, "window_s": round(span, 1)}


async def _hold(pool: WorkerPool, opts: Options) -> list[dict[str, Any]]:
    samples: list[dict[str, Any]] = []
    held_from = time.monotonic()
    while (left := opts.hold_s - (time.monotonic() - held_from)) > 0:
        await asyncio.sleep(min(10.0, left))
        status = await pool_status(pool)
        refreshes = status["other_messages"].get("token.refresh", 0)
        t_s = round(time.monotonic() - held_from, 1)
        samples.append({"t_s": t_s, "open": status["open"], "refreshes": refreshes})
        if len(samples) % 3 == 0:
            progress(f"held {t_s:.0f}s: {status['open']} open, {refreshes} refreshes received")
    return samples


def _int(metrics: dict[str, float], name: str) -> float:
    return int(metrics[name]) if name in metrics else math.nan


def _log_count(target: Target, text: str) -> int:
    paths = [s.log_path for s in target.servers if s.log_path is not None and s.log_path.exists()]
    return sum(line.count(text) for p in paths for line in p.read_text(errors="replace").splitlines())


def _per_second(times: list[float]) -> list[int]:
    """How many of `times` (sorted) fall in each second from the first."""
    counts: list[int] = []
    for t in times:
        second = int(t - times[0])
        counts.extend([0] * (second + 1 - len(counts)))
        counts[second] += 1
    return counts


def _r(value: float | None, digits: int = 3) -> float:
    return math.nan if value is None or not math.isfinite(value) else round(value, digits)


async def tokens(target: Target, pool: WorkerPool, opts: Options) -> tuple[dict[str, float], dict[str, Any]]:
    """N candidates in one event hold their sockets; the hub pushes `token.refresh`, clients ack."""
    if target.kind != "hub" or target.api_key is None:
        raise RuntimeError("the tokens scenario runs against the hub only (it needs HUB_API_KEY)")
    event = await _create_event(target, opts)
    sampler = Sampler(target)
    sampling = asyncio.get_running_loop().create_task(sampler.run())
    try:
        await asyncio.sleep(1.0)
        users: list[tuple[str, Role]] = [(f"tok-{i}", "candidate") for i in range(opts.sockets)]
        batch = await open_many(
            target, pool, users, record=False, opts=opts, event=EVENT_ID, keep_tokens=True
        )
        connected = time.time()
        await pool.each("tokens_watch", [{} for _ in range(len(pool))], timeout=60)
        start_metrics = _summed(target.metrics(TOKEN_METRICS))
        hold_from = time.time()
        progress(f"holding {batch.count} candidates for {opts.hold_s:.0f}s (token_ttl_s={opts.token_ttl_s})")
        hold_samples = await _hold(pool, opts)
        hold_to = time.time()
        end_metrics = _summed(target.metrics(TOKEN_METRICS))
        reports = await pool.each("tokens_report", [{} for _ in range(len(pool))], timeout=120)
        wanted = max(1, batch.count // max(1, opts.sockets // 10))
        per_worker = math.ceil(wanted / len(pool))
        sampled = await pool.each("tokens_sample", [{"count": per_worker}] * len(pool), timeout=60)
        joins = await _media_join(target, [t for part in sampled for t in part][:wanted])
        status = await pool_status(pool)
    finally:
        sampling.cancel()
    close_s = await close_all(pool)

    times = sorted(t for r in reports for t in r["refresh_times"])
    stamps = sorted(t for r in reports for t in r["refresh_stamps"])
    margins = [m for r in reports for m in r["margins"]]
    per_client = [n for r in reports for n in r["per_client_refreshes"]]
    rooms = {room for r in reports for room in r["rooms"]}
    total = {key: sum(r[key] for r in reports) for key in SUMMED}
    lefts = [r["min_left_s"] for r in reports if r["min_left_s"] is not None]
    idle = _idle_rate(sampler, connected, times[0] if times else None)
    hold_cpu = sampler.cpu_at(hold_to) - sampler.cpu_at(hold_from)
    hold_s = hold_to - hold_from
    sent_in_hold = end_metrics.get("proctorhub_token_refreshes_sent_total", 0.0) - start_metrics.get(
        "proctorhub_token_refreshes_sent_total", 0.0
    )
    refresh_cpu = hold_cpu - idle["cores"] * hold_s if idle["cores"] is not None else None
    per_refresh_ms = refresh_cpu / sent_in_hold * 1000 if refresh_cpu is not None and sent_in_hold else None
    rss_hold = sampler.rss_between(hold_from, hold_to) or [0]
    hub_margin = _margin_histogram(end_metrics)
    figures: dict[str, float] = {
        "candidates_opened": batch.count,
        "connect_s": round(batch.seconds, 2),
        "rooms_seen": len(rooms),
        "hub_rooms_added": _log_count(target, "added to event " + EVENT_ID),
        "room_assigns_received": total["assigns"],
        "refreshes_received": total["refreshes"],
        "refreshes_received_in_hold": len(times) - bisect_left(times, hold_from),
        "refreshes_per_client_min": min(per_client, default=0),
        "refreshes_per_client_p50": _r(percentile(per_client, 50), 1),
        "refreshes_per_client_max": max(per_client, default=0),
        "new_tokens_received": total["new_tokens"],
        "same_token_pushed_again": total["repeats"],
        "older_token_pushed": total["stale"],
        "acks_sent": total["acks"],
        "jwt_exp_mismatches": total["exp_mismatch"],
        "jwt_room_mismatches": total["room_mismatch"],
        "hub_refreshes_sent": _int(end_metrics, "proctorhub_token_refreshes_sent_total"),
        "hub_refreshes_acked": _int(end_metrics, "proctorhub_token_refreshes_acked_total"),
        "hub_resends": _int(end_metrics, "proctorhub_token_resends_total"),
        "hub_refresh_errors": _int(end_metrics, "proctorhub_token_refresh_errors_total"),
        "hub_tokens_minted": _int(end_metrics, "proctorhub_tokens_minted_total"),
        "hub_room_assign_failures": _int(end_metrics, "proctorhub_room_assign_failures_total"),
        "margin_min_s": _r(min(margins, default=math.nan)),
        "margin_p1_s": _r(percentile(margins, 1)),
        "margin_p50_s": _r(percentile(margins, 50)),
        "hub_margin_count": hub_margin["count"],
        "hub_margin_mean_s": hub_margin["mean_s"],
        "hub_margin_p50_at_most_s": hub_margin["p50_at_most_s"],
        "hub_margin_at_most_0_s": hub_margin["at_most_0_s"],
        "expired_client_s": total["expired_client_s"],
        "tokenless_client_s": total["tokenless_client_s"],
        "client_s_checked": total["checked_client_s"],
        "least_left_on_newest_s": _r(min(lefts, default=math.nan)),
        "max_refreshes_in_100ms": max_in_window(times, 0.1),
        "max_refreshes_in_1s": max_in_window(times, 1.0),
        "max_refreshes_in_100ms_by_hub_ts": max_in_window(stamps, 0.1),
        "hold_s": round(hold_s, 1),
        "hub_cpu_hold_s": round(hold_cpu, 2),
        "hub_cores_hold": round(hold_cpu / hold_s, 3) if hold_s else math.nan,
        "hub_idle_cores": _r(idle["cores"]),
        "hub_idle_window_s": idle["window_s"],
        "hub_refreshes_sent_in_hold": int(sent_in_hold),
        "hub_cpu_per_refresh_ms": _r(per_refresh_ms),
        "hub_rss_hold_start_kib": rss_hold[0],
        "hub_rss_hold_max_kib": max(rss_hold),
        "hub_rss_hold_end_kib": rss_hold[-1],
        "media_joins_tried": joins["tried"],
        "media_joins_ok": joins["ok"],
        "dropped_during_hold": batch.count - status["open"],
        "close_all_s": round(close_s, 2),
    }
    details = {
        **batch.details(),
        "event": event,
        "first_refresh_after_connect_s": round(times[0] - connected, 2) if times else None,
        "refreshes_received_per_s": _per_second(times),
        "refreshes_written_per_s_by_hub_ts": _per_second(stamps),
        "hub_margin_histogram": hub_margin,
        "media_join": joins,
        "hold_samples": hold_samples,
        "hub_token_metrics_at_hold_start": start_metrics,
        "hub_token_metrics_at_end": end_metrics,
        "expired_samples": [s for r in reports for s in r["expired_samples"]][:100],
        "cpu_rss_samples": [(round(t, 2), round(c, 2), rss) for t, c, rss in sampler.samples],
        "final_status": status,
        "hub_metrics": target.metrics(),
    }
    return figures, details
