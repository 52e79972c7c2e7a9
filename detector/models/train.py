"""Fit a model on normal data and calibrate it on the held-out tail of that data.

Each training series (rows x metrics, in time order) becomes feature rows; the last
``holdout`` share of each series is held out, the model is fitted on the rest, and its
scores on the held-out rows calibrate it (:mod:`detector.models.calibration`). Splits are
by time, never by shuffled rows: neighbouring rows share most of their window, so a
shuffled hold-out would be scored on near-copies of training rows.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> data = TrainingData([np.sin(np.arange(600) / 10)[:, None] + rng.normal(0, .05, (600, 1))],
...                     np.arange(600.0), ("temp",), "stream", "plant/boiler/temp")
>>> model = fit("kmeans", data, FeatureSpec((8,), (1,)), {"n_clusters": 4}, seed=1)
>>> model.training["rows"], model.training["fit_rows"], model.training["holdout_rows"]
(600, 474, 119)
>>> model.calibration.threshold > float(np.median(model.calibration.quantiles))
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from detector.models import kinds
from detector.models.artifact import TrainedModel
from detector.models.calibration import TailCalibration
from detector.models.features import FeatureSpec, offline_features

MIN_ROWS = 50


@dataclass
class TrainingData:
    """Normal data for one model: one or more series with the same metrics, in time order."""

    series: Sequence[np.ndarray]   # each rows x len(metrics)
    timestamps: np.ndarray         # every row's epoch seconds, all series together
    metrics: tuple[str, ...]
    scope: str                     # "stream" or "device"
    target: str                    # what it was trained for: stream glob or site/device
    source: str = ""

    @property
    def rows(self) -> int:
        return sum(len(s) for s in self.series)

    def digest(self) -> str:
        """sha256 over the metric names and every value, in order."""
        h = hashlib.sha256(",".join(self.metrics).encode())
        for s in self.series:
            h.update(np.ascontiguousarray(s, dtype="<f8").tobytes())
        return h.hexdigest()


def split_rows(features: np.ndarray, holdout: float) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, held-out rows) of one series' feature rows: the tail is held out.

    >>> a, b = split_rows(np.arange(10.0)[:, None], 0.3)
    >>> a.ravel().tolist(), b.ravel().tolist()
    ([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [7.0, 8.0, 9.0])
    """
    features = features[~np.isnan(features).any(axis=1)]
    cut = len(features) - max(1, int(round(len(features) * holdout)))
    return features[:cut], features[cut:]


def fit(kind: str, data: TrainingData, spec: FeatureSpec, params: dict | None = None, *,
        holdout: float = 0.2, far: float = 0.01, seed: int = 42,
        progress: Callable[[str, int, int], None] | None = None) -> TrainedModel:
    """Fit ``kind`` on ``data`` and calibrate it; ``progress(stage, done, total)``."""
    params = kinds.check_params(kind, dict(params or {}))
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must be between 0 and 1, got {holdout}")
    report = progress or (lambda stage, done, total: None)
    fit_parts, held_parts = [], []
    for values in data.series:
        head, tail = split_rows(offline_features(values, spec), holdout)
        fit_parts.append(head)
        held_parts.append(tail)
    X_fit, X_held = np.concatenate(fit_parts), np.concatenate(held_parts)
    if len(X_fit) < MIN_ROWS or len(X_held) < 20:
        raise ValueError(f"too little training data: {data.rows} rows give {len(X_fit)} rows "
                         f"to fit and {len(X_held)} to calibrate (need {MIN_ROWS} and 20; "
                         f"the feature window takes {spec.history - 1} rows per series)")
    pipeline = kinds.build(kind, params, seed, n_features=X_fit.shape[1])
    chosen = kinds.training_rows(kind, params, len(X_fit))
    kinds.fit(pipeline, kind, X_fit[chosen], lambda done, total: report("fit", done, total))
    held_scores = kinds.raw_scores(pipeline, kind, X_held)
    calibration = TailCalibration.fit(held_scores, far=far)
    report("calibrate", 1, 1)
    ts = data.timestamps
    training = {
        "source": data.source, "rows": data.rows, "series": len(data.series),
        "fit_rows": int(len(chosen)), "holdout_rows": int(len(X_held)), "holdout": holdout,
        "start": float(ts.min()) if len(ts) else None,
        "end": float(ts.max()) if len(ts) else None, "sha256": data.digest(),
    }
    return TrainedModel(kind, params, pipeline, spec, data.scope, data.target, data.metrics,
                        calibration, training, seed)
