"""Per-stream calibration: raw detector scores in, one anomaly score in [0, 1] out.

Raw scores mean different things on different streams (a z-score of 3 on a noisy
vibration sensor, an HST score of 0.95 on a slowly drifting temperature), so a fixed
threshold on them fires too often on some streams and never on others. For each
detector the *recent level* of its raw score (mean of the last ``short_window``) is
compared with the stream's own history of that level (exponentially weighted mean and
variance). Its upper tail probability ``p`` under a normal fit gives the surprise
``s = -log10(p)`` and the score ``s / (s + half_decades)``: 0.5 means "a level this high
is seen once in 10**half_decades readings on this stream", whatever the stream; the
score never saturates, so higher is always more surprising. Detectors' calibrated scores
are combined by ``max`` or ``mean``. This is the anomaly-likelihood idea Numenta uses on
NAB, measured here in ``docs/detection.md``.

>>> calibrator = Calibrator(n_detectors=1, short_window=3, halflife=100, warmup=20)
>>> for i in range(200):
...     calibrator.learn([1.0 + 0.1 * (i % 3)], [True])
>>> calibrator.score([1.1]) < 0.1 < 0.9 < calibrator.score([5.0])
True
"""

from __future__ import annotations

import math
from typing import Any

_LN10 = math.log(10.0)
_SQRT2 = math.sqrt(2.0)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def surprise(z: float) -> float:
    """``-log10(P(Z > z))`` for a standard normal Z, accurate far into the tail.

    >>> round(surprise(0.0), 4), round(surprise(4.2649), 2), round(surprise(40.0), 1)
    (0.301, 5.0, 349.4)
    """
    if z < 30.0:
        return -math.log(0.5 * math.erfc(z / _SQRT2)) / _LN10
    # Mills ratio asymptote; erfc underflows beyond ~38
    return (0.5 * z * z + math.log(z) + _LOG_SQRT_2PI) / _LN10


class _Level:
    """One detector's score history on one stream."""

    __slots__ = ("recent", "total", "n", "mean", "var")

    def __init__(self) -> None:
        self.recent: list[float] = []  # the last short_window - 1 raw scores
        self.total = 0.0               # their sum
        self.n = 0                     # levels learned
        self.mean = 0.0                # exponentially weighted mean and variance of the level
        self.var = 0.0


class Calibrator:
    """Calibration state of one stream for ``n_detectors`` raw scores."""

    __slots__ = ("n_detectors", "short_window", "halflife", "warmup", "half_decades", "combine",
                 "std_floor", "levels", "_alpha")

    def __init__(self, n_detectors: int, short_window: int = 60, halflife: float = 20000.0,
                 warmup: int = 100, half_decades: float = 5.0, combine: str = "max",
                 std_floor: float = 1e-6) -> None:
        self.n_detectors = n_detectors
        self.short_window = short_window
        self.halflife = halflife
        self.warmup = warmup
        self.half_decades = half_decades
        self.combine = combine
        self.std_floor = std_floor
        self._alpha = 1.0 - 0.5 ** (1.0 / halflife)
        self.levels = [_Level() for _ in range(n_detectors)]

    def score(self, raws: list[float]) -> float:
        """Calibrated score of the current raw scores; changes nothing."""
        return self._pass(raws, None)

    def learn(self, raws: list[float], ready: list[bool]) -> None:
        """Add the current raw scores; a detector still warming up is left out."""
        self._pass(raws, ready)

    def update(self, raws: list[float], ready: list[bool]) -> float:
        """``score(raws)`` then ``learn(raws, ready)`` in one pass."""
        return self._pass(raws, ready)

    def _pass(self, raws: list[float], ready: list[bool] | None) -> float:
        best = 0.0
        total = 0.0
        warmup = self.warmup
        for index, raw in enumerate(raws):
            state = self.levels[index]
            recent = state.recent
            level = (state.total + raw) / (len(recent) + 1)
            if state.n >= warmup:
                std = math.sqrt(state.var)
                z = (level - state.mean) / (std if std > self.std_floor else self.std_floor)
                level_surprise = surprise(z)
                calibrated = level_surprise / (level_surprise + self.half_decades)
                total += calibrated
                if calibrated > best:
                    best = calibrated
            if ready is None or not ready[index]:
                continue
            n = state.n = state.n + 1
            alpha = self._alpha if self._alpha * n > 1.0 else 1.0 / n
            delta = level - state.mean
            increment = alpha * delta
            state.mean += increment
            state.var = (1.0 - alpha) * (state.var + delta * increment)
            if self.short_window > 1:
                recent.append(raw)
                state.total += raw
                if len(recent) >= self.short_window:
                    state.total -= recent.pop(0)
        if self.combine == "max":
            return best
        return total / len(raws) if raws else 0.0

    def state(self) -> dict[str, Any]:
        return {"levels": [{"recent": list(s.recent), "total": s.total, "n": s.n,
                            "mean": s.mean, "var": s.var} for s in self.levels]}

    def load_state(self, state: dict[str, Any]) -> None:
        levels = []
        for saved in state["levels"]:
            level = _Level()
            level.recent = [float(v) for v in saved["recent"]]
            level.total = float(saved["total"])
            level.n = int(saved["n"])
            level.mean = float(saved["mean"])
            level.var = float(saved["var"])
            levels.append(level)
        self.levels = levels
