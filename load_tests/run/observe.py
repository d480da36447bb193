"""The hub and the tester over time: /metrics scraped, processes read from /proc, every few seconds.

The hub's RSS and CPU come from its `/metrics` (`process_resident_memory_bytes`,
`process_cpu_seconds_total`, Prometheus' process collector), so they are there for a remote
target too; for processes started here /proc is read instead (and the simulator's): a busy hub
answers /metrics late, and its CPU would then be charged to the wrong interval. The tester's
own CPU (main process + workers) is read from /proc: when it nears its cores, the client and not the
hub was the limit, and the report says so.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from load_tests.run import procs

WANTED = {
    "process_resident_memory_bytes": "rss_bytes",
    "process_cpu_seconds_total": "cpu_s",
    "proctorhub_send_queue_drops_total": "send_queue_drops",
    "proctorhub_handler_errors_total": "handler_errors",
    "proctorhub_token_refreshes_sent_total": "refreshes_sent",
    "proctorhub_token_refreshes_acked_total": "refreshes_acked",
    "proctorhub_token_resends_total": "token_resends",
    "proctorhub_token_refresh_errors_total": "token_refresh_errors",
    "proctorhub_room_assign_failures_total": "room_assign_failures",
    "proctorhub_allocation_passes_total": "allocation_passes",
}
SUMMED = {
    "proctorhub_messages_out_total": "messages_out",
    "proctorhub_messages_in_total": "messages_in",
    "proctorhub_closes_total": "closes",
    "proctorhub_connections": "connections",
}


def parse_metrics(text: str) -> dict[str, float]:
    """The samples the report uses, from Prometheus text (labelled families summed)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_part, _, value = line.rpartition(" ")
        name = name_part.split("{", 1)[0]
        try:
            number = float(value)
        except ValueError:
            continue
        if name in WANTED:
            out[WANTED[name]] = number
        elif name in SUMMED:
            out[SUMMED[name]] = out.get(SUMMED[name], 0.0) + number
    return out


@dataclass
class Sampler:
    """Every node of the hub scraped (its figures summed: the cluster is "the hub"), with `headers`
    (the API key, when /metrics asks for one); processes started here read from /proc (all `hub*`
    nodes as one `hub`; a killed node keeps the CPU it had used)."""

    hub_urls: list[str]
    headers: dict[str, str]
    local_pids: dict[str, int]
    tester_pids: list[int]
    interval_s: float = 2.0
    series: list[dict[str, Any]] = field(default_factory=list)
    scrape_errors: int = 0
    has_process_metrics: bool = False
    _cpu_seen: dict[int, float] = field(default_factory=dict)

    def _proc(self) -> dict[str, Any]:
        sample: dict[str, Any] = {
            "tester_cpu_s": sum(procs.cpu_s(pid) for pid in self.tester_pids),
            "machine_busy_s": procs.machine_busy_s(),
        }
        for name, pid in self.local_pids.items():
            kind = "hub" if name.startswith("hub") else name
            self._cpu_seen[pid] = procs.cpu_s(pid) or self._cpu_seen.get(pid, 0.0)
            sample[f"{kind}_proc_cpu_s"] = sample.get(f"{kind}_proc_cpu_s", 0.0) + self._cpu_seen[pid]
            sample[f"{kind}_proc_rss_kib"] = sample.get(f"{kind}_proc_rss_kib", 0) + procs.rss_kib(pid)
        return sample

    async def _scrape(self, http: httpx.AsyncClient, url: str) -> dict[str, float]:
        try:
            answer = await http.get(f"{url}/metrics", headers=self.headers)
        except httpx.HTTPError:
            return {}
        return parse_metrics(answer.text) if answer.status_code == 200 else {}

    async def sample(self, http: httpx.AsyncClient) -> dict[str, Any]:
        sample: dict[str, Any] = {"t": time.time(), **self._proc()}
        nodes = await asyncio.gather(*(self._scrape(http, url) for url in self.hub_urls))
        metrics: dict[str, float] = {}
        for node in nodes:
            for key, value in node.items():
                metrics[key] = metrics.get(key, 0.0) + value
        self.scrape_errors += sum(1 for node in nodes if not node)
        self.has_process_metrics |= "rss_bytes" in metrics
        sample.update(metrics)
        sample["nodes_answering"] = sum(1 for node in nodes if node)
        self.series.append(sample)
        return sample

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=10, trust_env=False, follow_redirects=False) as http:
            while True:
                started = time.monotonic()
                await self.sample(http)
                await asyncio.sleep(max(0.2, self.interval_s - (time.monotonic() - started)))

    def rates(self) -> list[dict[str, Any]]:
        """Per interval: hub RSS (MiB) and cores, tester cores, other processes' cores."""
        out = []
        cores = os.cpu_count() or 1
        for a, b in zip(self.series, self.series[1:], strict=False):
            dt = max(b["t"] - a["t"], 1e-6)
            row: dict[str, Any] = {"t": b["t"], "tester_cores": (b["tester_cpu_s"] - a["tester_cpu_s"]) / dt}
            # /proc is read at the sample's own moment; /metrics when the (maybe busy) hub answers
            if "hub_proc_cpu_s" in a:
                row["hub_cores"] = (b["hub_proc_cpu_s"] - a["hub_proc_cpu_s"]) / dt
            elif "cpu_s" in a and "cpu_s" in b:
                row["hub_cores"] = (b["cpu_s"] - a["cpu_s"]) / dt
            if "hub_proc_rss_kib" in b:
                row["hub_rss_mib"] = b["hub_proc_rss_kib"] / 1024
            elif "rss_bytes" in b:
                row["hub_rss_mib"] = b["rss_bytes"] / 2**20
            for other in ("simulator", "redis"):
                if f"{other}_proc_cpu_s" in a:
                    row[f"{other}_cores"] = (b[f"{other}_proc_cpu_s"] - a[f"{other}_proc_cpu_s"]) / dt
            machine = (b["machine_busy_s"] - a["machine_busy_s"]) / dt
            ours = row["tester_cores"] + sum(
                row.get(f"{k}_cores", 0.0) for k in ("hub", "simulator", "redis")
            )
            row["other_cores"] = max(0.0, min(machine, cores) - ours)
            out.append(row)
        return out
