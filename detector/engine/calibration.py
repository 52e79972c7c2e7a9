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


class Calibrator:
    """Calibration state of one stream for ``n_detectors`` raw scores."""

    __slots__ = ("n_detectors", "short_window", "halflife", "warmup", "half_decades", "combine",
                 "std_floor", "recent", "sums", "n", "mean", "var", "_alpha")

    def __init__(self, n_detectors: int, short_window: int = 10, halflife: float = 2000.0,
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
        # Per detector: the last short_window - 1 raw scores, readings learned, level stats.
        self.recent: list[list[float]] = [[] for _ in range(n_detectors)]
        self.n = [0] * n_detectors
        self.mean = [0.0] * n_detectors
        self.var = [0.0] * n_detectors

    def _level(self, index: int, raw: float) -> float:
        recent = self.recent[index]
        return (sum(recent) + raw) / (len(recent) + 1)

    def score(self, raws: list[float]) -> float:
        """Calibrated score of the current raw scores; changes nothing."""
        best = 0.0
        total = 0.0
        for index, raw in enumerate(raws):
            if self.n[index] < self.warmup:
                continue
            std = math.sqrt(self.var[index])
            z = (self._level(index, raw) - self.mean[index]) / max(std, self.std_floor)
            level = surprise(z)
            calibrated = level / (level + self.half_decades)
            total += calibrated
            if calibrated > best:
                best = calibrated
        if self.combine == "max":
            return best
        return total / len(raws)

    def learn(self, raws: list[float], ready: list[bool]) -> None:
        """Add the current raw scores; a detector still warming up is left out."""
        for index, raw in enumerate(raws):
            if not ready[index]:
                continue
            level = self._level(index, raw)
            n = self.n[index] = self.n[index] + 1
            alpha = max(self._alpha, 1.0 / n)
            delta = level - self.mean[index]
            increment = alpha * delta
            self.mean[index] += increment
            self.var[index] = (1.0 - alpha) * (self.var[index] + delta * increment)
            recent = self.recent[index]
            if self.short_window > 1:
                recent.append(raw)
                if len(recent) >= self.short_window:
                    del recent[0]

    def state(self) -> dict[str, Any]:
        return {"recent": [list(r) for r in self.recent], "n": list(self.n),
                "mean": list(self.mean), "var": list(self.var)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.recent = [[float(v) for v in r] for r in state["recent"]]
        self.n = [int(v) for v in state["n"]]
        self.mean = [float(v) for v in state["mean"]]
        self.var = [float(v) for v in state["var"]]
