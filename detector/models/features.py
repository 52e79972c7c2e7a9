"""Windowed features for trained models: one definition, computed online and offline.

A model never sees features computed differently live than in training: the same
:class:`FeatureSpec` drives :class:`OnlineFeatures` (the detector, one reading at a time,
state bounded by the longest window) and :func:`offline_features` (training and offline
evaluation, vectorised with numpy). ``tests/models/test_features.py`` checks that both give
the same numbers on the same series.

Per metric, in this order: ``value``, ``diff`` (step from the previous reading), each lag
``lag<k>`` (the value k readings earlier), and for each window ``w`` the ``mean``, ``std``
(population), ``min`` and ``max`` of the last ``w`` values including the current one. A
device's row is the concatenation over its metrics (so it holds the vector of its metrics
plus every per-metric feature). A row exists once the longest window and lag are filled.

>>> spec = FeatureSpec(windows=(3,), lags=(1,))
>>> spec.names(("temp",))
['temp.value', 'temp.diff', 'temp.lag1', 'temp.mean3', 'temp.std3', 'temp.min3', 'temp.max3']
>>> online = OnlineFeatures(spec, width=1)
>>> for v in [1.0, 2.0]:
...     online.learn([v])
>>> online.features_of([6.0])
[6.0, 4.0, 2.0, 3.0, 2.160246899469287, 1.0, 6.0]
>>> offline_features(np.array([[1.0], [2.0], [6.0]]), spec)[2].tolist() == online.features_of([6.0])
True
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

STATS = ("mean", "std", "min", "max")


@dataclass(frozen=True)
class FeatureSpec:
    """Which windowed features each metric contributes (saved in a model's metadata)."""

    windows: tuple[int, ...] = (8, 32)
    lags: tuple[int, ...] = (1, 2)

    def __post_init__(self) -> None:
        if any(w < 2 for w in self.windows) or len(set(self.windows)) != len(self.windows):
            raise ValueError(f"windows must be distinct lengths >= 2, got {list(self.windows)}")
        if any(k < 1 for k in self.lags) or len(set(self.lags)) != len(self.lags):
            raise ValueError(f"lags must be distinct and >= 1, got {list(self.lags)}")

    @property
    def history(self) -> int:
        """Readings a row needs, the current one included."""
        return max([2, *self.windows, *(k + 1 for k in self.lags)])

    def per_metric(self) -> list[str]:
        return (["value", "diff", *(f"lag{k}" for k in self.lags)]
                + [f"{stat}{w}" for w in self.windows for stat in STATS])

    def names(self, metrics: Sequence[str]) -> list[str]:
        return [f"{metric}.{name}" for metric in metrics for name in self.per_metric()]

    def to_dict(self) -> dict[str, Any]:
        return {key: list(value) for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        """The spec saved by ``to_dict``.

        >>> FeatureSpec.from_dict({"windows": [4], "lags": []})
        FeatureSpec(windows=(4,), lags=())
        """
        unknown = set(data) - {"windows", "lags"}
        if unknown:
            raise ValueError(f"unknown feature keys {sorted(unknown)} (known: lags, windows)")
        return cls(tuple(int(w) for w in data.get("windows", cls.windows)),
                   tuple(int(k) for k in data.get("lags", cls.lags)))


class OnlineFeatures:
    """Feature state of one stream (``width`` 1) or one device (``width`` metrics).

    ``features_of`` is pure (the current reading with the history before it);
    ``learn`` appends the reading. Holds at most ``spec.history - 1`` readings.
    """

    __slots__ = ("spec", "width", "recent", "_per_metric")

    def __init__(self, spec: FeatureSpec, width: int = 1) -> None:
        self.spec = spec
        self.width = width
        self.recent: deque[list[float]] = deque(maxlen=spec.history - 1)
        self._per_metric = len(spec.per_metric())

    @property
    def ready(self) -> bool:
        return len(self.recent) == self.spec.history - 1

    @property
    def size(self) -> int:
        return self._per_metric * self.width

    def features_of(self, row: Sequence[float]) -> list[float] | None:
        """The feature row of ``row`` (one value per metric), or None while warming up."""
        if not self.ready:
            return None
        out: list[float] = []
        recent = self.recent
        for j in range(self.width):
            value = float(row[j])
            past = [r[j] for r in recent]  # oldest first
            out.append(value)
            out.append(value - past[-1])
            out.extend(past[-k] for k in self.spec.lags)
            for w in self.spec.windows:
                window = [*past[len(past) - (w - 1):], value]
                mean = math.fsum(window) / w
                out.append(mean)
                out.append(math.sqrt(math.fsum((v - mean) ** 2 for v in window) / w))
                out.append(min(window))
                out.append(max(window))
        return out

    def learn(self, row: Sequence[float]) -> None:
        self.recent.append([float(v) for v in row])

    def state(self) -> dict[str, Any]:
        return {"recent": [list(r) for r in self.recent]}

    def load_state(self, state: dict[str, Any]) -> None:
        self.recent.clear()
        for r in state["recent"][-(self.spec.history - 1):]:
            self.recent.append([float(v) for v in r])


def offline_features(values: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Feature rows of a whole series ``values`` (rows x metrics); NaN rows while warming up.

    >>> offline_features(np.arange(4.0).reshape(4, 1), FeatureSpec((2,), ()))[:, :2].tolist()
    [[nan, nan], [1.0, 1.0], [2.0, 1.0], [3.0, 1.0]]
    """
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    rows, width = values.shape
    per_metric = len(spec.per_metric())
    out = np.full((rows, per_metric * width), np.nan)
    start = spec.history - 1
    if rows <= start:
        return out
    for j in range(width):
        x = values[:, j]
        columns = [x[start:], x[start:] - x[start - 1:-1]]
        columns += [x[start - k:rows - k] for k in spec.lags]
        for w in spec.windows:
            window = np.lib.stride_tricks.sliding_window_view(x, w)[start - (w - 1):]
            mean = window.mean(axis=1)
            columns += [mean, np.sqrt(((window - mean[:, None]) ** 2).mean(axis=1)),
                        window.min(axis=1), window.max(axis=1)]
        out[start:, j * per_metric:(j + 1) * per_metric] = np.column_stack(columns)
    return out
