"""Online z-score detectors: Welford (whole history) and exponentially weighted.

The raw score is ``|x - mean| / std``. Both return 0 during an explicit warm-up,
floor the standard deviation (a flat line would otherwise make any change infinitely
anomalous), and refuse to learn readings whose score exceeds ``skip_above`` so a glitch
or an anomaly does not pollute the baseline; after ``max_skips`` refusals in a row they
learn everything again until a reading scores normal, so a lasting level shift becomes
the new normal.

>>> detector = EwmZScore(halflife=50, warmup=5)
>>> for x in [20.0, 20.5, 19.5, 20.2, 19.8, 20.1]:
...     detector.learn_one(x)
>>> detector.score_one(20.0) < 1 < detector.score_one(25.0)
True
"""

from __future__ import annotations

import math
from typing import Any

from detector.engine.protocol import Base


def _skip(detector: ZScore | EwmZScore, x: float) -> bool:
    """Whether ``detector`` should leave ``x`` out of its mean and variance.

    A reading scoring above ``skip_above`` is not learned, up to ``max_skips`` of them in
    a row: a glitch (one absurd reading, or a short burst) never reaches the baseline.
    A longer run is a real change: from then on every reading is learned, as without
    skipping, until one scores normal again, so a level shift is absorbed
    ``max_skips`` readings late instead of never.
    """
    if detector.score_one(x) > detector.skip_above:  # type: ignore[operator]
        if detector.skips < detector.max_skips:
            detector.skips += 1
            return True
        return False
    detector.skips = 0
    return False


class ZScore(Base):
    """Welford's running mean and variance over every reading learned."""

    __slots__ = ("warmup", "std_floor", "std_floor_relative", "skip_above", "max_skips",
                 "n", "mean", "m2", "skips")

    def __init__(self, warmup: int = 30, std_floor: float = 1e-9,
                 std_floor_relative: float = 1e-4, skip_above: float | None = None,
                 max_skips: int = 100) -> None:
        self.warmup = warmup
        self.std_floor = std_floor
        self.std_floor_relative = std_floor_relative
        self.skip_above = skip_above
        self.max_skips = max_skips
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.skips = 0

    @property
    def ready(self) -> bool:
        """False during the warm-up, while the score is 0 by definition."""
        return self.n >= self.warmup and self.n >= 2

    def score_one(self, x: float) -> float:
        n = self.n
        if n < self.warmup or n < 2:
            return 0.0
        std = math.sqrt(self.m2 / (n - 1))
        floor = max(self.std_floor, self.std_floor_relative * abs(self.mean))
        return abs(x - self.mean) / (std if std > floor else floor)

    def learn_one(self, x: float) -> None:
        if self.skip_above is not None and _skip(self, x):
            return
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    def state(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "m2": self.m2, "skips": self.skips}

    def load_state(self, state: dict[str, Any]) -> None:
        self.n, self.mean, self.m2, self.skips = (
            int(state["n"]), float(state["mean"]), float(state["m2"]), int(state["skips"]))


class EwmZScore(Base):
    """Exponentially weighted mean and variance with a half-life in readings.

    Until ``1 / n`` drops below the EWM weight it averages with equal weights, so the
    early estimate is the plain mean rather than biased towards the first reading.
    """

    __slots__ = ("halflife", "warmup", "std_floor", "std_floor_relative", "skip_above",
                 "max_skips", "n", "mean", "var", "skips", "_alpha")

    def __init__(self, halflife: float = 150.0, warmup: int = 30, std_floor: float = 1e-9,
                 std_floor_relative: float = 1e-4, skip_above: float | None = None,
                 max_skips: int = 100) -> None:
        self.halflife = halflife
        self.warmup = warmup
        self.std_floor = std_floor
        self.std_floor_relative = std_floor_relative
        self.skip_above = skip_above
        self.max_skips = max_skips
        self.n = 0
        self.mean = 0.0
        self.var = 0.0
        self.skips = 0
        self._alpha = 1.0 - 0.5 ** (1.0 / halflife)

    @property
    def ready(self) -> bool:
        """False during the warm-up, while the score is 0 by definition."""
        return self.n >= self.warmup and self.n >= 2

    def score_one(self, x: float) -> float:
        if self.n < self.warmup or self.n < 2:
            return 0.0
        std = math.sqrt(self.var)
        floor = max(self.std_floor, self.std_floor_relative * abs(self.mean))
        return abs(x - self.mean) / (std if std > floor else floor)

    def learn_one(self, x: float) -> None:
        if self.skip_above is not None and _skip(self, x):
            return
        self.n += 1
        alpha = max(self._alpha, 1.0 / self.n)
        delta = x - self.mean
        increment = alpha * delta
        self.mean += increment
        self.var = (1.0 - alpha) * (self.var + delta * increment)

    def state(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "var": self.var, "skips": self.skips}

    def load_state(self, state: dict[str, Any]) -> None:
        self.n, self.mean, self.var, self.skips = (
            int(state["n"]), float(state["mean"]), float(state["var"]), int(state["skips"]))


class DiffZScore(Base):
    """EWM z-score of the first difference: how unusual this step is, cycle or not.

    A daily cycle or slow drift makes values far from their long-run mean without
    anything being wrong, and widens the spread a value z-score measures against; steps
    from one reading to the next stay small. A spike, the onset of a level shift or a
    burst of noise is a step far larger than the stream's usual ones.

    >>> detector = DiffZScore(halflife=100, warmup=5)
    >>> for i in range(50):
    ...     detector.learn_one(20.0 + 0.05 * i + 0.1 * (i % 2))  # a ramp with jitter
    >>> detector.score_one(22.6) < 3 < detector.score_one(26.0)
    True
    """

    __slots__ = ("halflife", "warmup", "std_floor", "std_floor_relative", "winsorize", "n",
                 "last", "steps")

    def __init__(self, halflife: float = 500.0, warmup: int = 30, std_floor: float = 1e-9,
                 std_floor_relative: float = 1e-4, winsorize: float | None = None) -> None:
        self.halflife = halflife
        self.warmup = warmup
        self.std_floor = std_floor
        self.std_floor_relative = std_floor_relative
        # A step is learned at most this many standard deviations from the mean step
        # (a glitch is two huge steps; skipping them would also hide regular big steps).
        self.winsorize = winsorize
        self.n = 0
        self.last = 0.0
        self.steps = EwmZScore(halflife, warmup, std_floor, 0.0)

    @property
    def ready(self) -> bool:
        return self.steps.ready

    def _floor(self) -> float:
        relative = self.std_floor_relative * abs(self.last)
        return relative if relative > self.std_floor else self.std_floor

    def score_one(self, x: float) -> float:
        if not self.n:
            return 0.0
        steps = self.steps
        if not steps.ready:
            return 0.0
        std = math.sqrt(steps.var)
        floor = self._floor()
        return abs(x - self.last - steps.mean) / (std if std > floor else floor)

    def learn_one(self, x: float) -> None:
        if self.n:
            step = x - self.last
            steps = self.steps
            if self.winsorize is not None and steps.ready:
                std = math.sqrt(steps.var)
                # the floor from the smaller of the two values: not from a glitch's size
                relative = self.std_floor_relative * min(abs(x), abs(self.last))
                floor = relative if relative > self.std_floor else self.std_floor
                limit = self.winsorize * (std if std > floor else floor)
                if step > steps.mean + limit:
                    step = steps.mean + limit
                elif step < steps.mean - limit:
                    step = steps.mean - limit
            steps.learn_one(step)
        self.last = x
        self.n += 1

    def state(self) -> dict[str, Any]:
        return {"n": self.n, "last": self.last, "steps": self.steps.state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.n, self.last = int(state["n"]), float(state["last"])
        self.steps.load_state(state["steps"])
