"""One stream's online seasonal forecaster: robust additive Holt-Winters, damped trend.

Readings are grouped into *steps* of the stream's own sampling interval (measured from
its first readings), so the season's phase follows the clock, not the reading count: a
gap advances the model by the missing steps (each imputed with its forecast), and a late
reading (one for a step already closed) is not learned. A season longer than
``max_season`` steps is learned on coarser steps (the mean of several readings), which
bounds the state: ``max_season`` floats plus a dozen scalars per stream.

The model learns one step at a time (``alpha`` level, ``beta`` trend, ``gamma``
season, trend damped by ``phi`` so long horizons do not run away). An error larger
than ``clip`` times the mean absolute error is learned clipped, so a spike or an anomaly
barely moves the baseline. The prediction interval is an online quantile of the
one-step absolute errors (at ``interval``), widened for step ``h`` by the standard
Holt-Winters error growth, so it adapts to each stream's own noise.

>>> model = Forecaster(season_s=60.0, interval=0.9)
>>> for t in range(300):  # a 60 s cycle sampled every 5 s
...     model.learn_one(1000.0 + 5 * t, 20.0 + (t % 12) * 0.5)
>>> model.ready, model.season, model.step_s
(True, 12, 5.0)
>>> [round(p.value, 2) for p in model.forecast(3)]
[20.0, 20.5, 21.0]
>>> model.forecast(1)[0].ts
2500.0
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from typing import Any

# Readings whose intervals set the step (their median): a few, so forecasting starts soon.
_INTERVAL_SAMPLE = 8
_VALUE_LIMIT = 1e100
_MIN_WIDTH = 1e-9  # relative half-width of the interval at least
# Errors seen before clipping starts (the mean error needs a few to mean anything).
_CLIP_AFTER = 10
# A gap longer than this many seasons restarts the phase instead of imputing every step.
_MAX_IMPUTED_SEASONS = 2


@dataclass(frozen=True, slots=True)
class Point:
    """One forecast step: its time, the expected value and the prediction interval."""

    ts: float
    value: float
    lower: float
    upper: float


class Forecaster:
    """Online additive Holt-Winters for one stream (pure: no I/O, no clock)."""

    __slots__ = ("season_s", "alpha", "beta", "gamma", "phi", "interval", "clip", "max_season",
                 "warmup", "step_s", "per_step", "season", "origin", "_first", "step", "_open",
                 "_sum", "_count", "seasonal", "level", "trend", "initialized", "errors", "mae",
                 "quantile", "late", "last_mean")

    def __init__(self, season_s: float | None = 86_400.0, *, alpha: float = 0.2,
                 beta: float = 0.01, gamma: float = 0.1, phi: float = 0.98,
                 interval: float = 0.9, clip: float = 5.0, max_season: int = 2016,
                 warmup: int = 50) -> None:
        self.season_s = season_s
        self.alpha, self.beta, self.gamma, self.phi = alpha, beta, gamma, phi
        self.interval = interval
        self.clip = clip
        self.max_season = max_season
        self.warmup = warmup
        # Set from the first readings' intervals.
        self.step_s = 0.0
        self.per_step = 1             # readings averaged into one step (coarse seasons)
        self.season = 0               # steps per season (1: no season)
        self.origin = 0.0             # start of step 0
        self._first: list[float] = []     # ts, value pairs until the step is known
        # The open step (index, sum, count) and the model.
        self.step = -1                # index of the last closed step
        self._open = -1
        self._sum = 0.0
        self._count = 0
        self.seasonal = array("d")
        self.level = 0.0
        self.trend = 0.0
        self.initialized = False
        self.errors = 0               # one-step errors seen since initialization
        self.mae = 0.0                # EWM mean absolute one-step error
        self.quantile = 0.0           # online quantile of the absolute one-step error
        self.late = 0                 # readings for a step already closed (not learned)
        self.last_mean = 0.0          # the last closed step's mean (what was observed)

    # -- learning -----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Whether forecasts (with intervals) are available."""
        return self.initialized and self.errors >= self.warmup

    def learn_one(self, ts: float, value: float) -> None:
        """Learn one reading at ``ts`` (epoch seconds)."""
        if not math.isfinite(value):
            return
        # As the engine does: |value| <= 1e100 keeps every sum and difference finite.
        value = min(max(value, -_VALUE_LIMIT), _VALUE_LIMIT)
        if self.step_s == 0.0:
            self._first.extend((ts, value))
            if len(self._first) >= 2 * _INTERVAL_SAMPLE:
                self._set_step()
            return
        self._add(ts, value)

    def _set_step(self) -> None:
        first = self._first
        stamps = first[0::2]
        gaps = sorted(b - a for a, b in zip(stamps, stamps[1:], strict=False) if b > a)
        interval = gaps[len(gaps) // 2] if gaps else 1.0
        season = 1
        if self.season_s:
            season = max(2, round(self.season_s / interval))
            self.per_step = max(1, math.ceil(season / self.max_season))
            season = max(2, round(self.season_s / (interval * self.per_step)))
        self.step_s = interval * self.per_step
        self.season = season
        self.seasonal = array("d", bytes(8 * season))
        self.origin = stamps[0] - 0.5 * interval  # a reading sits mid-step: jitter is harmless
        self._first = []
        for i in range(0, len(first), 2):
            self._add(first[i], first[i + 1])

    def _add(self, ts: float, value: float) -> None:
        index = math.floor((ts - self.origin) / self.step_s)
        if index <= self.step:
            self.late += 1
            return
        if index != self._open:
            if self._count:
                self._close()
            self._open, self._sum, self._count = index, 0.0, 0
        self._sum += value
        self._count += 1
        if self._count >= self.per_step:
            self._close()

    def _close(self) -> None:
        index, mean = self._open, self._sum / self._count
        self.last_mean = mean
        missing = index - self.step - 1
        if self.step >= 0 and missing > 0:
            if missing > _MAX_IMPUTED_SEASONS * self.season:
                self.step = index - 1 - self.season  # phase kept, history treated as stale
                missing = self.season
            for _ in range(missing):
                self._learn_step(self._expected(1), imputed=True)
        self._learn_step(mean)
        self._open, self._count = -1, 0

    def _learn_step(self, y: float, imputed: bool = False) -> None:
        self.step += 1
        m = self.season
        slot = self.step % m
        seasonal = self.seasonal
        if not self.initialized:
            seasonal[slot] = y
            if self.step + 1 >= m:  # one whole season seen: level = its mean
                self.level = sum(seasonal) / m
                for i in range(m):
                    seasonal[i] -= self.level
                self.initialized = True
            return
        level, trend, phi = self.level, self.trend, self.phi
        expected = level + phi * trend + seasonal[slot]
        error = y - expected
        if not imputed:
            raw = abs(error)
            bound = self.clip * self.mae
            if self.errors > _CLIP_AFTER and raw > bound:
                error = math.copysign(bound, error)
            # The mean error learns the clipped error: a lasting change still grows it (and
            # so the bound) by up to ``clip`` times per step, a glitch barely moves it. The
            # interval's quantile sees the real error, in steps of bounded size.
            self._track_error(raw, abs(error))
        y = expected + error
        alpha = self.alpha
        new_level = alpha * (y - seasonal[slot]) + (1 - alpha) * (level + phi * trend)
        self.trend = self.beta * (new_level - level) + (1 - self.beta) * phi * trend
        self.level = new_level
        if m > 1:
            seasonal[slot] = self.gamma * (y - new_level) + (1 - self.gamma) * seasonal[slot]

    def _track_error(self, raw: float, clipped: float) -> None:
        self.errors += 1
        if self.errors == 1:
            self.mae = self.quantile = clipped
            return
        rate = max(0.01, 1.0 / self.errors)
        self.mae += rate * (clipped - self.mae)
        # Stochastic quantile: up by (1 - level) of a step when exceeded, down by level else;
        # steps scaled by the stream's own error size.
        step = 0.05 * self.mae
        self.quantile += step * (self.interval if raw > self.quantile else self.interval - 1)
        self.quantile = max(self.quantile, 0.0)

    # -- forecasting --------------------------------------------------------------------------

    def expected(self, h: int) -> float:
        """The value expected ``h`` steps after the last closed one (once initialized)."""
        return self._expected(h)

    def _expected(self, h: int) -> float:
        phi = self.phi
        damped = phi * (1 - phi ** h) / (1 - phi) if phi < 1 else float(h)
        return (self.level + damped * self.trend
                + self.seasonal[(self.step + h) % self.season])

    def forecast(self, horizon: int) -> list[Point]:
        """The next ``horizon`` steps after the last closed one (empty until ``ready``)."""
        if not self.ready:
            return []
        widths = self._width_factors(horizon)
        base = self.origin + (self.step + 0.5) * self.step_s  # mid-step, like the readings
        points = []
        for h in range(1, horizon + 1):
            value = self._expected(h)
            # Never narrower than float noise: a noiseless stream's band still holds it.
            half = max(self.quantile * widths[h - 1], _MIN_WIDTH * (abs(value) + 1.0))
            points.append(Point(base + h * self.step_s, value, value - half, value + half))
        return points

    def _width_factors(self, horizon: int) -> list[float]:
        """sqrt(variance of the h-step error / variance of the one-step error), h = 1..H."""
        alpha, beta, gamma, phi, m = self.alpha, self.beta, self.gamma, self.phi, self.season
        factors, total, damped = [], 1.0, 0.0
        for h in range(1, horizon + 1):
            factors.append(math.sqrt(total))
            damped = damped * phi + phi
            c = alpha * (1 + beta * damped) + (gamma * (1 - alpha) if m > 1 and h % m == 0
                                                else 0.0)
            total += c * c
        return factors

    # -- checkpoints --------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {"step_s": self.step_s, "per_step": self.per_step, "season": self.season,
                "origin": self.origin, "first": list(self._first), "step": self.step,
                "open": self._open, "sum": self._sum, "count": self._count,
                "seasonal": list(self.seasonal), "level": self.level, "trend": self.trend,
                "initialized": self.initialized, "errors": self.errors, "mae": self.mae,
                "quantile": self.quantile, "late": self.late, "last_mean": self.last_mean}

    def load_state(self, state: dict[str, Any]) -> None:
        self.step_s = float(state["step_s"])
        self.per_step, self.season = int(state["per_step"]), int(state["season"])
        self.origin = float(state["origin"])
        self._first = [float(v) for v in state["first"]]
        self.step, self._open = int(state["step"]), int(state["open"])
        self._sum, self._count = float(state["sum"]), int(state["count"])
        self.seasonal = array("d", state["seasonal"])
        self.level, self.trend = float(state["level"]), float(state["trend"])
        self.initialized = bool(state["initialized"])
        self.errors = int(state["errors"])
        self.mae, self.quantile = float(state["mae"]), float(state["quantile"])
        self.late = int(state["late"])
        self.last_mean = float(state["last_mean"])

    def state_bytes(self) -> int:
        """Memory held by this stream's model (the object, its season, its scalars)."""
        import sys

        # The object with its slots, the season's array, the float objects the slots hold.
        return (sys.getsizeof(self) + sys.getsizeof(self.seasonal)
                + sys.getsizeof(self._first) + 24 * len(self._first) + 12 * 24)
