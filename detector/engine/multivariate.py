"""Per-device detectors over the vector of a device's metrics.

A device that publishes several metrics together (a pump's current, pressure, flow and
vibration) can be abnormal in their combination while every metric alone looks normal.
The metric set is fixed at the first reading (sorted names, at most ``max_metrics``); a
metric missing later keeps its last value, an unknown one is ignored.

- ``DeviceHalfSpaceTrees``: compact half-space trees over the scaled metric values.
- ``Mahalanobis``: distance of the vector from its exponentially weighted mean under the
  weighted covariance (a ridge keeps it invertible).

>>> detector = Mahalanobis(halflife=100, warmup=10)
>>> for i in range(50):
...     detector.learn_one({"a": float(i % 5), "b": float(i % 5) * 2.0 + 0.1 * (i % 2)})
>>> detector.score_one({"a": 2.0, "b": 4.0}) < 3 < detector.score_one({"a": 2.0, "b": -4.0})
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from detector.engine.hst import CompactHalfSpaceTrees
from detector.engine.protocol import Base


class _MetricVector:
    """Fixes the metric order at first sight and fills gaps with the last value seen."""

    __slots__ = ("max_metrics", "names", "last")

    def __init__(self, max_metrics: int) -> None:
        self.max_metrics = max_metrics
        self.names: tuple[str, ...] = ()
        self.last: list[float] = []

    def vector(self, values: Mapping[str, float]) -> list[float]:
        names = self.names or tuple(sorted(values)[: self.max_metrics])
        last = self.last or [0.0] * len(names)
        return [float(values.get(name, last[i])) for i, name in enumerate(names)]

    def learn(self, values: Mapping[str, float]) -> list[float]:
        vector = self.vector(values)
        if not self.names:
            self.names = tuple(sorted(values)[: self.max_metrics])
        self.last = vector
        return vector

    def state(self) -> dict[str, Any]:
        return {"names": list(self.names), "last": list(self.last)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.names = tuple(state["names"])
        self.last = [float(v) for v in state["last"]]


class DeviceHalfSpaceTrees(Base):
    """Half-space trees over a device's metrics, each scaled by its declared range or min/max."""

    __slots__ = ("n_trees", "height", "window_size", "max_metrics", "ranges", "seed",
                 "metrics", "low", "high", "trees")

    def __init__(self, n_trees: int = 10, height: int = 8, window_size: int = 250,
                 max_metrics: int = 16, ranges: Mapping[str, tuple[float, float]] | None = None,
                 seed: int | None = None) -> None:
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.max_metrics = max_metrics
        self.ranges = dict(ranges or {})
        self.seed = seed
        self.metrics = _MetricVector(max_metrics)
        self.low: list[float] = []
        self.high: list[float] = []
        self.trees: CompactHalfSpaceTrees | None = None

    @property
    def ready(self) -> bool:
        return self.trees is not None and self.trees.ready

    def _scaled(self, vector: list[float]) -> list[float]:
        out = []
        names = self.metrics.names
        for i, value in enumerate(vector):
            declared = self.ranges.get(names[i])
            if declared is not None:
                low, high = declared
            elif i < len(self.low):
                low, high = self.low[i], self.high[i]
            else:
                low = high = value
            out.append((value - low) / (high - low) if high > low else 0.5)
        return out

    def score_one(self, x: Mapping[str, float]) -> float:
        if self.trees is None:
            return 0.0
        return self.trees.score_one(self._scaled(self.metrics.vector(x)))

    def learn_one(self, x: Mapping[str, float]) -> None:
        first = not self.metrics.names
        vector = self.metrics.vector(x)
        if first:
            self.metrics.learn(x)
            self.low, self.high = list(vector), list(vector)
            self.trees = CompactHalfSpaceTrees(self.n_trees, self.height, self.window_size,
                                               len(vector), self.seed)
        self.trees.learn_one(self._scaled(vector))
        self.metrics.learn(x)
        self.low = [min(a, b) for a, b in zip(self.low, vector, strict=True)]
        self.high = [max(a, b) for a, b in zip(self.high, vector, strict=True)]

    def state(self) -> dict[str, Any]:
        return {"metrics": self.metrics.state(), "low": list(self.low), "high": list(self.high),
                "trees": None if self.trees is None else self.trees.state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.metrics.load_state(state["metrics"])
        self.low = [float(v) for v in state["low"]]
        self.high = [float(v) for v in state["high"]]
        self.trees = None
        if state["trees"] is not None:
            self.trees = CompactHalfSpaceTrees(self.n_trees, self.height, self.window_size,
                                               len(self.metrics.names), self.seed)
            self.trees.load_state(state["trees"])


class Mahalanobis(Base):
    """Mahalanobis distance from an exponentially weighted mean and covariance."""

    __slots__ = ("halflife", "warmup", "max_metrics", "ridge", "fit_readings", "metrics", "n",
                 "mean", "cov", "_alpha")

    def __init__(self, halflife: float = 500.0, warmup: int = 30, max_metrics: int = 16,
                 ridge: float = 1e-6, fit_readings: int = 0) -> None:
        self.halflife = halflife
        self.warmup = warmup
        self.max_metrics = max_metrics
        self.ridge = ridge
        # > 0: the normal fit is the first fit_readings readings (equal weights), then kept.
        self.fit_readings = fit_readings
        self.metrics = _MetricVector(max_metrics)
        self.n = 0
        self.mean: np.ndarray | None = None
        self.cov: np.ndarray | None = None
        self._alpha = 1.0 - 0.5 ** (1.0 / halflife)

    @property
    def ready(self) -> bool:
        return self.n >= self.warmup

    @property
    def fitted(self) -> bool:
        """True once a ``fit_readings`` fit is complete: the model (and its calibration) stays."""
        return bool(self.fit_readings) and self.n >= self.fit_readings

    def score_one(self, x: Mapping[str, float]) -> float:
        if self.n < self.warmup or self.mean is None or self.cov is None:
            return 0.0
        delta = np.asarray(self.metrics.vector(x)) - self.mean
        # Ridge relative to each metric's own variance, so units do not matter.
        scale = np.diag(self.cov).copy()
        scale[scale <= 0] = 1.0
        cov = self.cov + np.diag(self.ridge * scale + 1e-12)
        return float(np.sqrt(max(0.0, delta @ np.linalg.solve(cov, delta))))

    def learn_one(self, x: Mapping[str, float]) -> None:
        vector = np.asarray(self.metrics.learn(x))
        if self.fit_readings and self.n >= self.fit_readings:
            return
        self.n += 1
        if self.mean is None or self.cov is None:
            self.mean = vector.copy()
            self.cov = np.zeros((len(vector), len(vector)))
            return
        alpha = 1.0 / self.n if self.fit_readings else max(self._alpha, 1.0 / self.n)
        delta = vector - self.mean
        self.mean = self.mean + alpha * delta
        self.cov = (1.0 - alpha) * (self.cov + alpha * np.outer(delta, delta))

    def state(self) -> dict[str, Any]:
        return {"metrics": self.metrics.state(), "n": self.n, "mean": self.mean, "cov": self.cov}

    def load_state(self, state: dict[str, Any]) -> None:
        self.metrics.load_state(state["metrics"])
        self.n = int(state["n"])
        self.mean = None if state["mean"] is None else np.asarray(state["mean"], dtype=float)
        self.cov = None if state["cov"] is None else np.asarray(state["cov"], dtype=float)
