"""A plain-text progress line for long evaluations: files done, rows/s and ETA.

On a terminal the line is redrawn in place; otherwise (a log file, CI) a full line is
written at most every ``interval_s`` seconds, plus one at the end. The clock is injected.

>>> import io
>>> out, now = io.StringIO(), [0.0]
>>> bar = Progress("zscore", files=2, rows=1000, stream=out, clock=lambda: now[0], tty=False)
>>> now[0] = 1.0; bar.advance(rows=500, files=1)
>>> now[0] = 2.0; bar.advance(rows=250)          # within 10 s of the last line: not shown
>>> bar.finish()
>>> print(out.getvalue().strip())
zscore: 1/2 files, 500/1,000 rows (50%), 500 rows/s, ETA 0:00:01
zscore: 1/2 files, 750/1,000 rows (75%), 375 rows/s, done in 0:00:02
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    """Counts rows and files as they finish and shows them on ``stream``."""

    def __init__(self, label: str, *, files: int, rows: int, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic, tty: bool | None = None,
                 interval_s: float = 10.0) -> None:
        self.label = label
        self.total_files = files
        self.total_rows = max(rows, 1)
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval_s = interval_s if not self.tty else 0.2
        self.files = 0
        self.rows = 0
        self._started = clock()
        self._shown_at = -float("inf")
        self._width = 0

    def advance(self, rows: int = 0, files: int = 0) -> None:
        self.rows += rows
        self.files += files
        now = self.clock()
        if now - self._shown_at >= self.interval_s:
            self._show(self.line(now))
            self._shown_at = now

    def line(self, now: float, done: bool = False) -> str:
        elapsed = max(now - self._started, 1e-9)
        rate = self.rows / elapsed
        head = (f"{self.label}: {self.files}/{self.total_files} files, "
                f"{self.rows:,}/{self.total_rows:,} rows ({100 * self.rows / self.total_rows:.0f}%), "
                f"{rate:,.0f} rows/s")
        if done:
            return f"{head}, done in {_clock(elapsed)}"
        left = (self.total_rows - self.rows) / rate if rate > 0 else None
        return f"{head}, ETA {_clock(left) if left is not None else '?'}"

    def finish(self) -> None:
        self._show(self.line(self.clock(), done=True))
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()

    def _show(self, text: str) -> None:
        if self.tty:
            padding = " " * max(self._width - len(text), 0)
            self.stream.write(f"\r{text}{padding}")
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
