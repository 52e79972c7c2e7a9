"""Rate control: map the source's clock to the wall clock at ``speed`` times real time.

``speed`` 1 is real time, 60 is a simulated minute per second, 0 is as fast as possible.
A pacer that falls behind (a slow broker) does not burst to catch up on its own: it
sends at once what is due, and the time it lost is kept as ``lag_s``.

>>> clock = FakeClock()
>>> pacer = Pacer(speed=10.0, clock=clock.now, sleep=clock.sleep)
>>> pacer.wait_for(0.0); pacer.wait_for(50.0); clock.t
5.0
>>> Pacer(speed=0).wait_for(1e9)  # as fast as possible: never waits
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Pacer:
    """Waits until the wall-clock moment of a source offset (seconds since the start)."""

    def __init__(self, speed: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] | None = None,
                 stop: threading.Event | None = None) -> None:
        if speed < 0:
            raise ValueError(f"speed must be >= 0 (0 = as fast as possible), got {speed}")
        self.speed = speed
        self._clock = clock
        self._stop = stop
        self._sleep = sleep or (stop.wait if stop is not None else time.sleep)
        self._wall_start: float | None = None
        self.lag_s = 0.0

    def wait_for(self, offset_s: float) -> None:
        """Return when ``offset_s`` of source time has passed at this speed (or at once
        when as fast as possible, or when the stop event is set)."""
        if not self.speed:
            return
        now = self._clock()
        if self._wall_start is None:
            self._wall_start = now - offset_s / self.speed
        due = self._wall_start + offset_s / self.speed
        if due > now:
            if self._stop is not None and self._stop.is_set():
                return
            self._sleep(due - now)
        else:
            self.lag_s = now - due


class FakeClock:
    """A clock for tests and examples: ``sleep`` moves it forward, nothing waits."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds
