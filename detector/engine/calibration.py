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


class Likelihood:
    """How unusual the recent mean of a score is against a long sliding history of it.

    HTM's anomaly-likelihood idea, re-expressed with bounded state: the mean of the last
    ``window`` scores is compared with a normal fit of those means over the last
    ``blocks`` x ``block`` readings (kept as per-block sums, so memory does not grow with
    the history) and its upper tail is a surprise in decades, mapped like the calibration's
    (``s / (s + half_decades)``). A stream whose score is often high gets a high bar; a
    burst on a quiet stream stands out. ``std_floor`` keeps a flat history from making
    every wiggle infinitely unlikely.

    >>> likelihood = Likelihood(window=3, block=10, blocks=5, warmup=20)
    >>> for i in range(100):
    ...     likelihood.learn(0.2 + 0.05 * (i % 2))
    >>> likelihood.score(0.22) < 0.3 < 0.6 < likelihood.score(0.95)
    True
    """

    __slots__ = ("window", "block", "blocks", "warmup", "half_decades", "std_floor",
                 "recent", "recent_sum", "sums", "squares", "counts", "n", "_closed")

    def __init__(self, window: int = 10, block: int = 100, blocks: int = 50,
                 warmup: int = 300, half_decades: float = 5.0, std_floor: float = 0.02) -> None:
        self.window = window
        self.block = block
        self.blocks = blocks
        self.warmup = warmup
        self.half_decades = half_decades
        self.std_floor = std_floor
        self.recent = array("d")          # the last window - 1 scores
        self.recent_sum = 0.0
        self.sums = array("d", [0.0])     # per block (the last one filling): sum of means
        self.squares = array("d", [0.0])  # ... and of squared means
        self.counts = array("l", [0])
        self.n = 0                        # means learned
        self._closed: tuple[int, float, float] | None = None  # totals of the full blocks

    def _totals_of_closed(self) -> tuple[int, float, float]:
        # Recomputed only when a block closes. sum() over the full blocks plus the
        # filling block's value adds in the same order as sum() over every block (on
        # CPython <= 3.11, whose float sum() adds left to right: the same bits), at a
        # 50th of the work per reading.
        closed = self._closed
        if closed is None:
            last = len(self.counts) - 1
            closed = self._closed = (sum(self.counts[:last]), sum(self.sums[:last]),
                                     sum(self.squares[:last]))
        return closed

    def _mean(self, value: float) -> float:
        return (self.recent_sum + value) / (len(self.recent) + 1)

    def score(self, value: float) -> float:
        """Score of ``value`` (the current combined score) given the history; changes nothing."""
        if self.n < self.warmup:
            return 0.0
        counts, sums, squares = self._totals_of_closed()
        count = counts + self.counts[-1]
        mean = (sums + self.sums[-1]) / count
        variance = max((squares + self.squares[-1]) / count - mean * mean, 0.0)
        std = max(math.sqrt(variance), self.std_floor)
        top = surprise((self._mean(value) - mean) / std)
        return top / (top + self.half_decades)

    def learn(self, value: float) -> None:
        level = self._mean(value)
        self.n += 1
        if self.counts[-1] >= self.block:
            self.sums.append(0.0)
            self.squares.append(0.0)
            self.counts.append(0)
            if len(self.counts) > self.blocks:
                del self.sums[0], self.squares[0], self.counts[0]
            self._closed = None
        self.sums[-1] += level
        self.squares[-1] += level * level
        self.counts[-1] += 1
        if self.window > 1:
            self.recent.append(value)
            self.recent_sum += value
            if len(self.recent) > self.window - 1:
                self.recent_sum -= self.recent[0]
                del self.recent[0]

    def state(self) -> dict[str, Any]:
        return {"recent": list(self.recent), "recent_sum": self.recent_sum,
                "sums": list(self.sums), "squares": list(self.squares),
                "counts": list(self.counts), "n": self.n}

    def load_state(self, state: dict[str, Any]) -> None:
        self.recent = array("d", [float(v) for v in state["recent"]])
        self.recent_sum = float(state["recent_sum"])
        self.sums = array("d", [float(v) for v in state["sums"]])
        self.squares = array("d", [float(v) for v in state["squares"]])
        self.counts = array("l", [int(v) for v in state["counts"]])
        self.n = int(state["n"])
        self._closed = None


class Calibrator:
    """Calibration state of one stream for ``n_detectors`` raw scores."""

    __slots__ = ("n_detectors", "short_windows", "halflife", "warmup", "half_decades",
                 "combine", "std_floor", "winsorize", "surprises", "histories", "_alpha",
                 "_keep", "likelihood")

    def __init__(self, n_detectors: int, short_windows: tuple[int, ...] = (2, 60),
                 halflife: float = 20000.0, warmup: int = 100, half_decades: float = 5.0,
                 combine: str = "max", std_floor: float = 1e-6,
                 winsorize: float | None = 20.0, surprises: tuple[bool, ...] = (),
                 likelihood: dict[str, Any] | None = None) -> None:
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
        # Optional second stage on the combined score of the calibrated detectors: a
        # sustained, moderately raised score stands out (detectors whose raw score is
        # already a surprise, range and flatline, bypass it, as HTM's spatial check does).
        self.likelihood: Likelihood | None = None
        if likelihood and likelihood.get("enabled"):
            options = {k: v for k, v in likelihood.items() if k != "enabled"}
            self.likelihood = Likelihood(half_decades=half_decades, **options)

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
        # The engine's hottest loop. A detector's calibrated score is the surprise of its
        # most unusual window level, and surprise(z) and s / (s + h) both rise with z, so
        # each detector's score needs one surprise() of its largest z (not one per window),
        # and the "max" combination one of the largest z over all detectors.
        best_z = -math.inf
        total = 0.0
        best_surprise = 0.0
        scored = False  # some calibrated detector is past its warm-up
        by_max = self.combine == "max"
        half_decades = self.half_decades
        windows = self.short_windows
        std_floor = self.std_floor
        warmup = self.warmup
        width = self.winsorize
        keep = self._keep
        sqrt = math.sqrt
        for index, raw in enumerate(raws):
            if not raw <= RAW_MAX:  # inf, or nan (never from a sane detector)
                raw = RAW_MAX if raw > 0 else 0.0
            if self.surprises[index]:
                calibrated = raw / (raw + half_decades) if raw > 0 else 0.0
                total += calibrated
                if calibrated > best_surprise:
                    best_surprise = calibrated
                continue
            history = self.histories[index]
            recent, sums, means, variances = history.recent, history.sums, history.mean, history.var
            held = len(recent)
            levels = [(sums[k] + raw) / ((w - 1 if w - 1 < held else held) + 1)
                      for k, w in enumerate(windows)]
            warm = history.n >= warmup
            if warm:
                scored = True
                top_z = -math.inf
                stds = []  # per window, floored: the z-scores' and the clipping's scale
                for k, level in enumerate(levels):
                    std = sqrt(variances[k])
                    if not std > std_floor:
                        std = std_floor
                    stds.append(std)
                    z = (level - means[k]) / std
                    if z > top_z:
                        top_z = z
                if by_max:
                    if top_z > best_z:
                        best_z = top_z
                else:
                    top = surprise(top_z)
                    total += top / (top + half_decades) if top > 0.0 else 0.0
            if ready is None or not ready[index]:
                continue
            if width is not None and warm:
                # Robust learning: clip the raw score (it stays in the windows) and every
                # level at `winsorize` standard deviations above their history.
                limit = means[0] + width * stds[0]
                if raw > limit:
                    raw = limit
                    levels = [(sums[k] + raw) / ((w - 1 if w - 1 < held else held) + 1)
                              for k, w in enumerate(windows)]
                for k, level in enumerate(levels):
                    limit = means[k] + width * stds[k]
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
            if keep:
                recent.append(raw)
                held += 1
                for k, w in enumerate(windows):
                    if w > 1:
                        sums[k] += raw
                        if held > w - 1:
                            sums[k] -= recent[-w]
                if held > keep:
                    del recent[0]
        best = 0.0
        if scored and by_max:
            top = surprise(best_z)
            if top > 0.0:
                best = top / (top + half_decades)
        likelihood = self.likelihood
        if likelihood is not None:
            # The calibrated detectors' combined score goes through the likelihood stage.
            combined = best if by_max else (total / len(raws) if raws else 0.0)
            result = likelihood.score(combined)
            if ready is not None and scored:
                likelihood.learn(combined)
            # Added to the calibrated score, not instead of it: replacing it (HTM's way)
            # lost single spikes the short window catches (docs/detection.md).
            return max(result, combined, best_surprise)
        if by_max:
            return max(best, best_surprise)
        return total / len(raws) if raws else 0.0

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "histories": [{"recent": list(h.recent), "sums": list(h.sums), "n": h.n,
                           "mean": list(h.mean), "var": list(h.var)}
                          for h in self.histories]}
        if self.likelihood is not None:
            state["likelihood"] = self.likelihood.state()
        return state

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
        if self.likelihood is not None and "likelihood" in state:
            self.likelihood.load_state(state["likelihood"])
