"""A short window of recent values turned into features in [0, 1] for tree detectors.

Half-space trees split the unit cube at random, so every feature must live in [0, 1]:

- ``value``: the value scaled by the declared range (a sensor's physical limits) when the
  stream rule gives one, else by the min/max seen so far (``minmax``) or by an exponentially
  weighted mean and standard deviation (``standard``: mean maps to 0.5, +-``standard_width``
  standard deviations to 0 and 1).
- ``diff``: the first difference, 0.5 + diff / (2 * width * typical |diff|).
- ``mean`` / ``std``: mean and spread of the last ``rolling`` values.
- ``lag1`` .. ``lag3``: earlier scaled values.

The standardiser learns winsorised values and steps (at most ``ROBUST_WIDTH`` standard
deviations out, after ``ROBUST_AFTER`` readings), so one absurd reading does not squash
every later feature towards 0.5; a real level shift is absorbed within a few hundred
readings as the variance grows.

A single raw value is barely better than random for HST on real data; its shape over a
few readings (jumps, plateaus, noise bursts) is what makes a reading stand out.

>>> window = FeatureWindow(features=("value", "diff"), value_range=(0.0, 100.0))
>>> window.learn(20.0)
>>> window.features_of(30.0)
[0.3, 1.0]
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

_LAGS = {"lag1": 1, "lag2": 2, "lag3": 3}
# Robust learning of the standardiser: after this many readings, a value (a step) is
# learned at most ROBUST_WIDTH standard deviations from the mean (of steps: from 0).
ROBUST_AFTER = 30
ROBUST_WIDTH = 8.0


class FeatureWindow:
    """Per-stream feature state; ``features_of`` is pure, ``learn`` appends the value."""

    __slots__ = ("features", "rolling", "scaler", "value_range", "standard_halflife",
                 "standard_width", "recent", "n", "low", "high", "mean", "var", "diff_var",
                 "_alpha", "_keep", "_rolled")

    def __init__(self, features: tuple[str, ...] = ("value", "diff", "std"), rolling: int = 8,
                 scaler: str = "standard", value_range: tuple[float, float] | None = None,
                 standard_halflife: float = 1000.0, standard_width: float = 4.0) -> None:
        self.features = tuple(features)
        self.rolling = rolling
        self.scaler = scaler
        self.value_range = value_range
        self.standard_halflife = standard_halflife
        self.standard_width = standard_width
        lags = [_LAGS[f] for f in self.features if f in _LAGS]
        self._rolled = bool({"mean", "std"} & set(self.features))
        self._keep = max([rolling - 1 if self._rolled else 1, *lags, 1])
        self._alpha = 1.0 - 0.5 ** (1.0 / standard_halflife)
        self.recent: deque[float] = deque(maxlen=self._keep)
        self.n = 0
        self.low = 0.0
        self.high = 0.0
        self.mean = 0.0
        self.var = 0.0
        self.diff_var = 0.0

    @property
    def size(self) -> int:
        return len(self.features)

    def _scale(self, value: float) -> float:
        if self.value_range is not None:
            low, high = self.value_range
            return (value - low) / (high - low)
        if self.scaler == "minmax":
            span = self.high - self.low
            return (value - self.low) / span if span > 0 else 0.5
        std = math.sqrt(self.var)
        return 0.5 + (value - self.mean) / (2.0 * self.standard_width * std) if std > 0 else 0.5

    def features_of(self, value: float) -> list[float]:
        """Features of ``value`` following the values learned so far."""
        out = []
        recent = self.recent
        if self._rolled:
            window = [*recent, value]
            if len(window) > self.rolling:
                window = window[-self.rolling:]
            mean = sum(window) / len(window)
        for name in self.features:
            if name == "value":
                out.append(self._scale(value))
            elif name == "diff":
                out.append(self._diff_feature(value - recent[-1] if recent else 0.0))
            elif name == "mean":
                out.append(self._scale(mean))
            elif name == "std":
                spread = math.sqrt(sum([(v - mean) ** 2 for v in window]) / len(window))
                out.append(self._spread_feature(spread))
            else:
                lag = _LAGS[name]
                out.append(self._scale(recent[-lag] if len(recent) >= lag else value))
        return out

    def _diff_feature(self, diff: float) -> float:
        std = math.sqrt(self.diff_var)
        if std <= 0:
            return 0.5 if diff == 0 else (1.0 if diff > 0 else 0.0)
        return min(1.0, max(0.0, 0.5 + diff / (2.0 * self.standard_width * std)))

    def _spread_feature(self, spread: float) -> float:
        std = math.sqrt(self.diff_var)
        if std <= 0:
            return 0.0 if spread == 0 else 1.0
        return min(1.0, spread / (self.standard_width * std))

    def learn(self, value: float) -> None:
        recent = self.recent
        robust = self.n >= ROBUST_AFTER
        if recent:
            diff = value - recent[-1]
            alpha = max(self._alpha, 1.0 / self.n)
            square = diff * diff
            if robust:  # winsorised: one glitch cannot blow up the scale of steps
                limit = ROBUST_WIDTH * ROBUST_WIDTH * self.diff_var
                if square > limit > 0:
                    square = limit
            self.diff_var = (1.0 - alpha) * self.diff_var + alpha * square
        self.n += 1
        if self.n == 1:
            self.low = self.high = value
        elif value < self.low:
            self.low = value
        elif value > self.high:
            self.high = value
        alpha = max(self._alpha, 1.0 / self.n)
        if robust and self.var > 0:  # winsorised at ROBUST_WIDTH standard deviations
            limit = ROBUST_WIDTH * math.sqrt(self.var)
            if value > self.mean + limit:
                value = self.mean + limit
            elif value < self.mean - limit:
                value = self.mean - limit
        delta = value - self.mean
        increment = alpha * delta
        self.mean += increment
        self.var = (1.0 - alpha) * (self.var + delta * increment)
        recent.append(value)

    def state(self) -> dict[str, Any]:
        return {"recent": list(self.recent), "n": self.n, "low": self.low, "high": self.high,
                "mean": self.mean, "var": self.var, "diff_var": self.diff_var}

    def load_state(self, state: dict[str, Any]) -> None:
        self.recent = deque((float(v) for v in state["recent"]), maxlen=self._keep)
        self.n = int(state["n"])
        self.low, self.high = float(state["low"]), float(state["high"])
        self.mean, self.var = float(state["mean"]), float(state["var"])
        self.diff_var = float(state["diff_var"])
