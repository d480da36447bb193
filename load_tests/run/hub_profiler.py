"""Where the hub's time goes under load: `python -m load_tests.run.hub_profiler OUT.json --port ...`.

Runs the hub in this process (server.serve, exactly as `proctorhub run` does) with a thread that
looks at the main thread's stack every `SAMPLE_S` (sys._current_frames) and counts, per function, the
samples in which it was running (own) and those in which it was anywhere on the stack (cumulative);
samples waiting in the event loop's selector are idle. cProfile's deterministic tracing slowed the
hub so much under exam-5000's join storm (2-3x) that it fell behind and the run measured the
profiler; sampling at 200 Hz costs a few percent. The table is written to OUT.json every 10 s and
at exit.
"""

from __future__ import annotations

import argparse
import collections
import json
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from server.config import ConfigError, configure_logging, load_settings
from server.serve import serve

SAMPLE_S = 0.005
IDLE = frozenset({"select", "poll", "epoll", "_run_once"})


def _name(frame: FrameType) -> str:
    code = frame.f_code
    return f"{code.co_name} ({Path(code.co_filename).name}:{code.co_firstlineno})"


class StackSampler:
    def __init__(self, thread_id: int, out: Path) -> None:
        self.thread_id = thread_id
        self.out = out
        self.own: collections.Counter[str] = collections.Counter()
        self.cumulative: collections.Counter[str] = collections.Counter()
        self.samples = 0
        self.idle = 0
        self.started = time.time()
        self._stop = threading.Event()

    def sample(self) -> None:
        frame = sys._current_frames().get(self.thread_id)
        if frame is None:
            return
        self.samples += 1
        if frame.f_code.co_name in IDLE:
            self.idle += 1
            return
        self.own[_name(frame)] += 1
        seen = set()
        while frame is not None:
            name = _name(frame)
            if name not in seen:
                seen.add(name)
                self.cumulative[name] += 1
            frame = frame.f_back  # type: ignore[assignment]

    def table(self, limit: int = 40) -> dict[str, object]:
        busy = max(self.samples - self.idle, 1)
        rows = [
            {
                "function": name,
                "own_pct_of_busy": round(100 * n / busy, 2),
                "cumulative_pct_of_busy": round(100 * self.cumulative[name] / busy, 2),
            }
            for name, n in self.own.most_common(limit)
        ]
        top_cumulative = [
            {"function": name, "cumulative_pct_of_busy": round(100 * n / busy, 2)}
            for name, n in self.cumulative.most_common(limit)
        ]
        return {
            "samples": self.samples,
            "idle_samples": self.idle,
            "interval_s": SAMPLE_S,
            "seconds": round(time.time() - self.started, 1),
            "by_own": rows,
            "by_cumulative": top_cumulative,
        }

    def write(self) -> None:
        self.out.write_text(json.dumps(self.table(), indent=1))

    def run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(SAMPLE_S):
            self.sample()
            if time.monotonic() - last > 10:
                self.write()
                last = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        self.write()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m load_tests.run.hub_profiler", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("out", type=Path, help="where the table goes (JSON)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"hub_profiler: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    sampler = StackSampler(threading.get_ident(), args.out)
    threading.Thread(target=sampler.run, daemon=True, name="hub-sampler").start()
    # uvicorn shuts down on SIGTERM, then raises it again with the handler it found: exit through
    # the `finally` below (the table written) rather than die of the default action
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        serve(settings, args.host, args.port)
    finally:
        sampler.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
