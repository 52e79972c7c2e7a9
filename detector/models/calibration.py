"""Raw model scores turned into false-alarm rates measured on held-out normal data.

The model is fitted on the head of the training data and scores the held-out tail it
never saw. A raw score ``r`` then maps to ``p``, the fraction of held-out normal rows
scoring at least ``r`` (smoothed: ``(k + 1) / (n + 1)``), and to the surprise
``-log10(p)`` in decades. Above the highest held-out scores the tail is extrapolated as
an exponential fitted to the top ``TAIL`` of them, so the surprise keeps growing with
the raw score instead of saturating at ``log10(n + 1)``. ``threshold`` is the raw score
whose false-alarm rate on the held-out rows is ``far``.

>>> import numpy as np
>>> held_out = np.random.default_rng(0).normal(size=2000)
>>> cal = TailCalibration.fit(held_out, far=0.01)
>>> round(cal.false_alarm_rate, 3), round(cal.surprise(float(np.median(held_out))), 2)
(0.01, 0.3)
>>> cal.surprise(6.0) > cal.surprise(4.0) > cal.surprise(cal.threshold) >= 2.0 - 0.01
True
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

TAIL = 0.05        # the top share of held-out scores the exponential tail is fitted to
QUANTILES = 1001   # held-out scores are kept as this many quantiles (bounded metadata)


@dataclass(frozen=True)
class TailCalibration:
    quantiles: tuple[float, ...]  # held-out raw scores at evenly spaced ranks, ascending
    rows: int                     # held-out rows they summarise
    tail_start: float             # raw score where the exponential tail begins
    tail_scale: float             # its mean excess over tail_start
    far: float                    # the target false-alarm rate
    threshold: float              # raw score with that false-alarm rate on held-out rows
    false_alarm_rate: float       # measured share of held-out rows >= threshold

    @classmethod
    def fit(cls, scores: np.ndarray, far: float = 0.01) -> TailCalibration:
        scores = np.sort(np.asarray(scores, dtype=float))
        scores = scores[np.isfinite(scores)]
        if len(scores) < 20:
            raise ValueError(f"calibration needs at least 20 held-out rows, got {len(scores)}")
        if not 0 < far < 1:
            raise ValueError(f"far must be between 0 and 1, got {far}")
        quantiles = np.quantile(scores, np.linspace(0, 1, min(QUANTILES, len(scores))))
        tail_start = float(np.quantile(scores, 1 - TAIL))
        excess = scores[scores > tail_start] - tail_start
        spread = float(scores[-1] - scores[0]) or 1.0
        tail_scale = float(excess.mean()) if len(excess) and excess.mean() > 0 else spread * 1e-3
        threshold = float(np.quantile(scores, 1 - far, method="higher"))
        measured = float(np.mean(scores >= threshold))
        return cls(tuple(float(q) for q in quantiles), len(scores), tail_start, tail_scale,
                   far, threshold, measured)

    def p_value(self, raw: float) -> float:
        """Share of held-out normal rows scoring at least ``raw`` (extrapolated above)."""
        q = self.quantiles
        n = self.rows
        if raw > self.tail_start:
            tail_p = TAIL * math.exp(-(raw - self.tail_start) / self.tail_scale)
            return max(tail_p, 1e-300)
        above = (len(q) - bisect.bisect_left(q, raw)) / len(q)
        return (above * n + 1) / (n + 1)

    def surprise(self, raw: float) -> float:
        """``-log10`` of the false-alarm rate at ``raw``: 2 is one reading in 100."""
        if raw != raw:  # nan: nothing to say
            return 0.0
        return -math.log10(self.p_value(raw))

    def to_dict(self) -> dict[str, Any]:
        return {"quantiles": list(self.quantiles), "rows": self.rows,
                "tail_start": self.tail_start, "tail_scale": self.tail_scale, "far": self.far,
                "threshold": self.threshold, "false_alarm_rate": self.false_alarm_rate}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TailCalibration:
        return cls(tuple(float(q) for q in data["quantiles"]), int(data["rows"]),
                   float(data["tail_start"]), float(data["tail_scale"]), float(data["far"]),
                   float(data["threshold"]), float(data["false_alarm_rate"]))
