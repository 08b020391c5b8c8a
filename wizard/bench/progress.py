"""Progress on stderr: a live bar on a terminal, one line per finished level otherwise, or nothing."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from servewise.wizard.bench.client import RequestRecord

BAR = 24
REDRAW_S = 0.1


class Progress:
    """``mode``: "bar" (terminal), "lines" (one line per level) or "off" (``--json`` off a terminal)."""

    def __init__(self, mode: str, stream: TextIO | None = None) -> None:
        self.mode = mode
        self.stream = stream or sys.stderr
        self.label, self.total, self.done, self.failed = "", 0, 0, 0
        self._t0 = self._drawn = 0.0

    @classmethod
    def choose(cls, json_out: bool, enabled: bool = True) -> Progress:
        if not enabled:
            return cls("off")
        if sys.stderr.isatty():
            return cls("bar")
        return cls("off" if json_out else "lines")

    def start(self, label: str, total: int) -> None:
        self.label, self.total, self.done, self.failed = label, total, 0, 0
        self._t0 = time.perf_counter()
        self._draw(force=True)

    def __call__(self, rec: RequestRecord) -> None:
        if rec.index >= 0:
            self.done += 1
            self.failed += 0 if rec.ok else 1
        self._draw()

    def finish(self, summary: str) -> None:
        if self.mode == "bar":
            self.stream.write("\r\x1b[2K")
        if self.mode != "off":
            self.stream.write(f"{self.label}: {summary}\n")
            self.stream.flush()

    def _draw(self, force: bool = False) -> None:
        if self.mode != "bar":
            return
        now = time.perf_counter()
        if not force and now - self._drawn < REDRAW_S and self.done < self.total:
            return
        self._drawn = now
        filled = BAR * self.done // max(self.total, 1)
        errs = f", {self.failed} failed" if self.failed else ""
        self.stream.write(f"\r\x1b[2K{self.label} [{'#' * filled}{'.' * (BAR - filled)}] "
                          f"{self.done}/{self.total}{errs}, {now - self._t0:.1f} s")
        self.stream.flush()
