"""Per-stream calibration: raw detector scores in, one anomaly score in [0, 1] out.

Raw scores mean different things on different streams (a z-score of 3 on a noisy
vibration sensor, an HST score of 0.95 on a slowly drifting temperature), so a fixed
threshold on them fires too often on some streams and never on others. For each
detector the *recent level* of its raw score (mean of its last ``w`` scores, for each
``w`` in ``short_windows``: short for sudden changes, long for sustained ones) is
compared with the stream's own history of that level (exponentially weighted mean and
variance). Its upper tail probability ``p`` under a normal fit gives the surprise
``s = -log10(p)`` and the score ``s / (s + half_decades)``: 0.5 means "a level this high
is seen once in 10**half_decades readings on this stream", whatever the stream; the
score never saturates, so higher is always more surprising. Detectors' calibrated scores
are combined by ``max`` or ``mean``. This is the anomaly-likelihood idea Numenta uses on
NAB, measured here in ``docs/detection.md``.

>>> calibrator = Calibrator(n_detectors=1, short_windows=(1, 3), halflife=100, warmup=20)
>>> for i in range(200):
...     calibrator.learn([1.0 + 0.1 * (i % 3)], [True])
>>> calibrator.score([1.1]) < 0.1 < 0.9 < calibrator.score([5.0])
True
"""

from __future__ import annotations

import math
from array import array
from typing import Any

_LN10 = math.log(10.0)
_SQRT2 = math.sqrt(2.0)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_Z_MAX = 1e100
RAW_MAX = 1e100  # a larger raw score (or inf) is taken as this; nan as 0


def surprise(z: float) -> float:
    """``-log10(P(Z > z))`` for a standard normal Z, accurate far into the tail.

    >>> round(surprise(0.0), 4), round(surprise(4.2649), 2), round(surprise(40.0), 1)
    (0.301, 5.0, 349.4)
    >>> math.isfinite(surprise(1e300)) and surprise(1e300) == surprise(math.inf)
    True
    """
    if z < 30.0:
        return -math.log(0.5 * math.erfc(z / _SQRT2)) / _LN10
    if z > _Z_MAX:  # z * z would overflow; far beyond any meaningful difference anyway
        z = _Z_MAX
    # Mills ratio asymptote; erfc underflows beyond ~38
    return (0.5 * z * z + math.log(z) + _LOG_SQRT_2PI) / _LN10


class _History:
    """One detector's score history on one stream, at every window length."""

    __slots__ = ("recent", "sums", "n", "mean", "var")

    def __init__(self, windows: int) -> None:
        self.recent = array("d")          # the last (longest window - 1) raw scores
        self.sums = [0.0] * windows       # per window w: sum of the last w - 1 of them
        self.n = 0                        # levels learned
        self.mean = [0.0] * windows       # per window: weighted mean and variance of levels
        self.var = [0.0] * windows


class Calibrator:
    """Calibration state of one stream for ``n_detectors`` raw scores."""

    __slots__ = ("n_detectors", "short_windows", "halflife", "warmup", "half_decades",
                 "combine", "std_floor", "winsorize", "surprises", "histories", "_alpha",
                 "_keep")

    def __init__(self, n_detectors: int, short_windows: tuple[int, ...] = (2, 60),
                 halflife: float = 20000.0, warmup: int = 100, half_decades: float = 5.0,
                 combine: str = "max", std_floor: float = 1e-6,
                 winsorize: float | None = 20.0, surprises: tuple[bool, ...] = ()) -> None:
        self.n_detectors = n_detectors
        # Detectors whose raw score is already a surprise in decades: used as it is.
        self.surprises = tuple(surprises) or (False,) * n_detectors
        self.short_windows = tuple(short_windows)
        self.halflife = halflife
        self.warmup = warmup
        self.half_decades = half_decades
        self.combine = combine
        self.std_floor = std_floor
        # Learn a raw score / level at most this many standard deviations above the
        # stream's history of it: one absurd reading cannot wreck the history.
        self.winsorize = winsorize
        self._alpha = 1.0 - 0.5 ** (1.0 / halflife)
        self._keep = max(self.short_windows) - 1
        self.histories = [_History(len(self.short_windows)) for _ in range(n_detectors)]

    def score(self, raws: list[float]) -> float:
        """Calibrated score of the current raw scores; changes nothing."""
        return self._pass(raws, None)

    def learn(self, raws: list[float], ready: list[bool]) -> None:
        """Add the current raw scores; a detector still warming up is left out."""
        self._pass(raws, ready)

    def update(self, raws: list[float], ready: list[bool],
               frozen: list[bool] | None = None) -> float:
        """``score(raws)`` then ``learn(raws, ready)`` in one pass.

        A ``frozen`` detector (one that keeps a fitted model, ``fitted`` true) still moves
        its windows, but its history of levels stays the one seen while it was fitting.
        """
        return self._pass(raws, ready, frozen)

    def _pass(self, raws: list[float], ready: list[bool] | None,
              frozen: list[bool] | None = None) -> float:
        best = 0.0
        total = 0.0
        windows = self.short_windows
        std_floor = self.std_floor
        for index, raw in enumerate(raws):
            if not raw <= RAW_MAX:  # inf, or nan (never from a sane detector)
                raw = RAW_MAX if raw > 0 else 0.0
            if self.surprises[index]:
                calibrated = raw / (raw + self.half_decades) if raw > 0 else 0.0
                total += calibrated
                if calibrated > best:
                    best = calibrated
                continue
            history = self.histories[index]
            recent, sums, means, variances = history.recent, history.sums, history.mean, history.var
            held = len(recent)
            levels = [(sums[k] + raw) / ((w - 1 if w - 1 < held else held) + 1)
                      for k, w in enumerate(windows)]
            if history.n >= self.warmup:
                top = 0.0
                for k, level in enumerate(levels):
                    std = math.sqrt(variances[k])
                    z = (level - means[k]) / (std if std > std_floor else std_floor)
                    level_surprise = surprise(z)
                    if level_surprise > top:
                        top = level_surprise
                calibrated = top / (top + self.half_decades)
                total += calibrated
                if calibrated > best:
                    best = calibrated
            if ready is None or not ready[index]:
                continue
            if self.winsorize is not None and history.n >= self.warmup:
                # Robust learning: clip the raw score (it stays in the windows) and every
                # level at `winsorize` standard deviations above their history.
                width = self.winsorize
                std = math.sqrt(variances[0])
                limit = means[0] + width * (std if std > std_floor else std_floor)
                if raw > limit:
                    raw = limit
                    levels = [(sums[k] + raw) / ((w - 1 if w - 1 < held else held) + 1)
                              for k, w in enumerate(windows)]
                for k, level in enumerate(levels):
                    std = math.sqrt(variances[k])
                    limit = means[k] + width * (std if std > std_floor else std_floor)
                    if level > limit:
                        levels[k] = limit
            if frozen is None or not frozen[index]:
                n = history.n = history.n + 1
                alpha = self._alpha if self._alpha * n > 1.0 else 1.0 / n
                for k, level in enumerate(levels):
                    delta = level - means[k]
                    increment = alpha * delta
                    means[k] += increment
                    variances[k] = (1.0 - alpha) * (variances[k] + delta * increment)
            if self._keep:
                recent.append(raw)
                held += 1
                for k, w in enumerate(windows):
                    if w > 1:
                        sums[k] += raw
                        if held > w - 1:
                            sums[k] -= recent[-w]
                if held > self._keep:
                    del recent[0]
        if self.combine == "max":
            return best
        return total / len(raws) if raws else 0.0

    def state(self) -> dict[str, Any]:
        return {"histories": [{"recent": list(h.recent), "sums": list(h.sums), "n": h.n,
                               "mean": list(h.mean), "var": list(h.var)}
                              for h in self.histories]}

    def load_state(self, state: dict[str, Any]) -> None:
        histories = []
        for saved in state["histories"]:
            history = _History(len(self.short_windows))
            history.recent = array("d", [float(v) for v in saved["recent"]])
            history.sums = [float(v) for v in saved["sums"]]
            history.n = int(saved["n"])
            history.mean = [float(v) for v in saved["mean"]]
            history.var = [float(v) for v in saved["var"]]
            histories.append(history)
        self.histories = histories
