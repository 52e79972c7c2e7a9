"""The progress line of a long run, and its final summary.

On a terminal the line is redrawn in place on stderr every second; otherwise (a service,
a pipe) it is logged every ``interval_s`` seconds.

>>> progress_line(Progress(sent=12345, in_flight=20, buffered=0, dropped=0, reconnects=1,
...                        faults=3), rate=1234.5)
'sent 12,345 (1,234/s)  in flight 20  buffered 0  dropped 0  reconnects 1  faults 3'
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    sent: int
    in_flight: int = 0
    buffered: int = 0
    dropped: int = 0
    reconnects: int = 0
    faults: int = 0


def progress_line(progress: Progress, rate: float) -> str:
    return (f"sent {progress.sent:,} ({rate:,.0f}/s)  in flight {progress.in_flight:,}  "
            f"buffered {progress.buffered:,}  dropped {progress.dropped:,}  "
            f"reconnects {progress.reconnects}  faults {progress.faults:,}")


class ProgressReporter:
    """A daemon thread that shows ``snapshot()`` periodically until ``stop()``."""

    def __init__(self, snapshot: Callable[[], Progress], interval_s: float = 10.0,
                 stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self._snapshot = snapshot
        self._stream = stream or sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._interval_s = 1.0 if self._tty else interval_s
        self._clock = clock
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)

    def start(self) -> ProgressReporter:
        if self._interval_s > 0:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        if self._tty:
            self._stream.write("\n")
            self._stream.flush()

    def _run(self) -> None:
        last_sent, last_at = 0, self._clock()
        while not self._done.wait(self._interval_s):
            progress, now = self._snapshot(), self._clock()
            rate = (progress.sent - last_sent) / max(1e-9, now - last_at)
            last_sent, last_at = progress.sent, now
            line = progress_line(progress, rate)
            if self._tty:
                self._stream.write("\r" + line + "\x1b[K")
                self._stream.flush()
            else:
                log.info("%s", line)
