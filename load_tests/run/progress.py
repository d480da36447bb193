"""The live view while a load test runs: a rich panel on a terminal, plain lines otherwise.

`Progress.update(state)` is called once a second with the merged worker snapshots; on a TTY a
`rich.live.Live` table is redrawn (connected, assigned, rooms, watched, open alerts, refreshes,
errors, elapsed / planned), elsewhere (CI logs, pipes) one line is printed every `plain_every_s`.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

FIELDS = (
    ("phase", "phase"),
    ("elapsed", "elapsed / planned"),
    ("connected", "candidates connected"),
    ("assigned", "assigned a room"),
    ("media", "in 100ms"),
    ("finished", "finished"),
    ("proctors", "proctors connected"),
    ("rooms", "rooms occupied / watched"),
    ("unwatched", "candidates unwatched now"),
    ("alerts", "alerts seen (open now)"),
    ("refreshes", "token refreshes"),
    ("errors", "errors / failed joins"),
    ("backfill", "backfill segments archived (pages busy)"),
    ("cpu", "tester / hub cores"),
)


def line(state: dict[str, Any]) -> str:
    return "  ".join(f"{key}={state[key]}" for key, _ in FIELDS if key in state)


class Progress:
    def __init__(self, mode: str = "auto", stream: TextIO | None = None, plain_every_s: float = 5.0) -> None:
        self.stream = stream or sys.stderr
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.mode = ("rich" if tty else "plain") if mode == "auto" else mode
        self.plain_every_s = plain_every_s
        self._last = 0.0
        self._live: Any = None
        if self.mode == "rich":
            try:
                from rich.console import Console
                from rich.live import Live
            except ImportError:  # the loadtest extra is not installed: plain lines
                self.mode = "plain"
            else:
                self._live = Live(console=Console(file=self.stream), refresh_per_second=2, transient=False)
                self._live.start()

    def _table(self, state: dict[str, Any]) -> Any:
        from rich.table import Table

        table = Table(title=f"proctorhub loadtest: {state.get('scenario', '')}", show_header=False)
        table.add_column(style="bold")
        table.add_column(justify="right")
        for key, label in FIELDS:
            if key in state:
                table.add_row(label, str(state[key]))
        return table

    def update(self, state: dict[str, Any]) -> None:
        if self.mode == "off":
            return
        if self.mode == "rich" and self._live is not None:
            self._live.update(self._table(state))
            return
        now = time.monotonic()
        if now - self._last >= self.plain_every_s:
            self._last = now
            print(f"[{time.strftime('%H:%M:%S')}] {line(state)}", file=self.stream, flush=True)

    def note(self, text: str) -> None:
        if self.mode == "off":
            return
        if self._live is not None:
            self._live.console.print(text)
        else:
            print(f"[{time.strftime('%H:%M:%S')}] {text}", file=self.stream, flush=True)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
