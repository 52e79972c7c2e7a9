"""Liveness, as opposed to readiness: is the process still working (restart it if not)?

Readiness (``/health``, ``/health/ready``) says whether a service's outputs flow: the
broker connected, the database writable. An outage of either makes it unready, but a
restart would not help (the spool or the outbox is handling it). Liveness
(``/health/live``) says only whether its threads run and their loops turn; that is
what an orchestrator should restart on.

>>> beat = Heartbeat()
>>> thread = threading.Thread(target=lambda: None); thread.start(); thread.join()
>>> ok, body = check_liveness([Vital("worker", thread, beat)])
>>> ok, body["problems"]
(False, ['thread worker is not running'])
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

# A loop turning less often than this is stuck (a checkpoint of 20,000 streams takes ~5 s).
MAX_STALL_S = 120.0


class Heartbeat:
    """A loop's proof that it turns: ``beat()`` every turn; ``waiting()`` around a call
    that may block on another stage (judged by that stage's heartbeat instead).

    >>> clock = [0.0]
    >>> beat = Heartbeat(lambda: clock[0]); clock[0] = 5.0
    >>> beat.stalled_s()
    5.0
    >>> with beat.waiting():
    ...     clock[0] = 500.0; beat.stalled_s()
    0.0
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._at = monotonic()
        self._waiting = 0

    def beat(self) -> None:
        self._at = self._monotonic()

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        self._waiting += 1
        try:
            yield
        finally:
            self._waiting -= 1
            self.beat()

    def stalled_s(self) -> float:
        """Seconds since the last beat (0 while waiting on another stage)."""
        return 0.0 if self._waiting else max(0.0, self._monotonic() - self._at)


@dataclass(frozen=True)
class Vital:
    """One thread the process needs, and optionally the heartbeat of its loop."""

    name: str
    thread: threading.Thread
    heartbeat: Heartbeat | None = None
    max_stall_s: float = MAX_STALL_S


def check_liveness(vitals: Iterable[Vital], *, stopping: bool = False
                   ) -> tuple[bool, dict[str, Any]]:
    """(live, body for ``/health/live``): every thread running, every loop turning."""
    problems = []
    threads = {}
    for vital in vitals:
        alive = vital.thread.is_alive()
        stalled = vital.heartbeat.stalled_s() if vital.heartbeat is not None else 0.0
        threads[vital.name] = {"alive": alive, "stalled_s": round(stalled, 3)}
        if not alive:
            problems.append(f"thread {vital.name} is not running")
        elif stalled > vital.max_stall_s:
            problems.append(f"thread {vital.name} has not turned its loop for {stalled:.0f} s "
                            f"(at most {vital.max_stall_s:.0f} s)")
    if stopping:
        problems.append("stopping")
    return not problems, {"status": "ok" if not problems else "dead", "problems": problems,
                          "threads": threads}
