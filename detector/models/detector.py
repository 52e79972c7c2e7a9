"""A trained model as a scoring-only detector the engine runs like any other.

The fitted model is shared (read-only) by every stream it scores; each stream keeps only
its feature window (:class:`OnlineFeatures`). ``score_one`` returns the model's surprise
in decades (``-log10`` of the false-alarm rate on held-out normal data), which the
engine calibrates and combines like any raw score. ``learn_one`` only moves the window:
the model itself does not change online. A device model takes the device's metric dict;
a metric missing from one message keeps its last value.

>>> import numpy as np
>>> from detector.models.train import TrainingData, fit
>>> from detector.models.features import FeatureSpec
>>> values = np.sin(np.arange(400) / 5)[:, None]
>>> data = TrainingData([values], np.arange(400.0), ("t",), "stream", "a/b/t")
>>> model = fit("kmeans", data, FeatureSpec((4,), ()), {"n_clusters": 4}, seed=0)
>>> detector = ModelDetector(model)
>>> for v in values[:10, 0]:
...     detector.learn_one(float(v))
>>> detector.ready, detector.score_one(float(values[10, 0])) < 2.0 < detector.score_one(50.0)
(True, True)
"""

from __future__ import annotations

from typing import Any

from detector.engine.protocol import Base
from detector.models.artifact import TrainedModel
from detector.models.features import OnlineFeatures


class ModelDetector(Base):
    __slots__ = ("model", "window", "_last")

    def __init__(self, model: TrainedModel) -> None:
        self.model = model
        self.window = OnlineFeatures(model.spec, width=len(model.metrics))
        self._last: dict[str, float] = {}

    @property
    def ready(self) -> bool:
        return self.window.ready

    def _row(self, x: Any) -> list[float] | None:
        if not isinstance(x, dict):
            return [float(x)]
        row = []
        for metric in self.model.metrics:
            value = x.get(metric, self._last.get(metric))
            if value is None:
                return None
            row.append(float(value))
        return row

    def score_one(self, x: Any) -> float:
        row = self._row(x)
        features = self.window.features_of(row) if row is not None else None
        if features is None:
            return 0.0
        raw = self.model.score_row(features)
        return self.model.calibration.surprise(raw)

    def learn_one(self, x: Any) -> None:
        row = self._row(x)
        if row is None:
            return
        if isinstance(x, dict):
            self._last.update(zip(self.model.metrics, row, strict=True))
        self.window.learn(row)

    def state(self) -> dict[str, Any]:
        return {**self.window.state(), "last": dict(self._last),
                "metrics": list(self.model.metrics)}

    def load_state(self, state: dict[str, Any]) -> None:
        # The window holds raw values in the model's metric order: a checkpoint written
        # with another model file (other metrics) starts the window afresh, never crashes.
        if list(state.get("metrics", [])) != list(self.model.metrics):
            return
        self.window.load_state(state)
        self._last = {str(k): float(v) for k, v in state.get("last", {}).items()}
