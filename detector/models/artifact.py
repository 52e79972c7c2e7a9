"""A trained model on disk: ``MODEL.joblib`` (the fitted pipeline) and ``MODEL.json``.

The JSON metadata says what the model is for and how it was made: kind and parameters,
the feature definition, the scope (one stream, a stream glob, or a device and its metric
order), training range and row count, a hash of the training data, library versions and
the score calibration. It is read and checked *before* the joblib file is unpickled.

joblib files are pickles: loading one runs code it contains. The detector therefore loads
only files the operator named in its configuration, from the configured model directory.

>>> meta = {"format": FORMAT, "kind": "kmeans", "versions": {"scikit-learn": "1.5.2"}}
>>> version_mismatch(meta, "1.6.0") is None, version_mismatch(meta, "2.0.1")
(True, 'trained with scikit-learn 1.5.2, this is 2.0.1 (major versions differ)')
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detector.models import kinds
from detector.models.calibration import TailCalibration
from detector.models.features import FeatureSpec, offline_features
from iotwatch import IotwatchError

FORMAT = "iotwatch-model/1"


class ModelError(IotwatchError):
    """A model file that cannot be used: missing, corrupt or made for something else."""


@dataclass
class TrainedModel:
    """A fitted pipeline with everything needed to score rows as in training."""

    kind: str
    params: dict[str, Any]
    pipeline: Any
    spec: FeatureSpec
    scope: str                    # "stream" or "device"
    target: str                   # stream glob (site/device/metric) or "site/device"
    metrics: tuple[str, ...]      # metric order of a feature row
    calibration: TailCalibration
    training: dict[str, Any] = field(default_factory=dict)
    seed: int = 42

    _row_scorer: Any = field(default=None, repr=False, compare=False)

    def raw_scores(self, X: np.ndarray) -> np.ndarray:
        return kinds.raw_scores(self.pipeline, self.kind, X)

    def score_row(self, features: list[float]) -> float:
        """Raw score of one feature row, without scikit-learn's per-call overhead."""
        if self._row_scorer is None:
            from detector.models.fast import row_scorer

            self._row_scorer = row_scorer(self.pipeline, self.kind)
        return self._row_scorer(features)

    def score_series(self, values: np.ndarray) -> np.ndarray:
        """Surprise (decades) of every row of ``values`` (rows x metrics); 0 while warming up."""
        X = offline_features(values, self.spec)
        ok = ~np.isnan(X).any(axis=1)
        out = np.zeros(len(X))
        if ok.any():
            out[ok] = [self.calibration.surprise(r) for r in self.raw_scores(X[ok])]
        return out

    def metadata(self) -> dict[str, Any]:
        import joblib
        import sklearn

        return {
            "format": FORMAT, "kind": self.kind, "params": self.params, "seed": self.seed,
            "features": self.spec.to_dict(), "scope": self.scope, "target": self.target,
            "metrics": list(self.metrics),
            "feature_names": self.spec.names(self.metrics), "training": self.training,
            "calibration": self.calibration.to_dict(),
            "versions": {"scikit-learn": sklearn.__version__, "numpy": np.__version__,
                         "joblib": joblib.__version__, "python": platform.python_version()},
        }


def metadata_path(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


def save(model: TrainedModel, path: Path) -> Path:
    """Write ``path`` (joblib) and its metadata beside it; returns the metadata path."""
    import joblib

    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model.pipeline, path)
    meta = metadata_path(path)
    meta.write_text(json.dumps(model.metadata(), indent=2) + "\n", encoding="utf-8")
    return meta


def version_mismatch(meta: dict[str, Any], installed: str) -> str | None:
    trained = str(meta.get("versions", {}).get("scikit-learn", "?"))
    if trained.split(".")[0] != installed.split(".")[0]:
        return f"trained with scikit-learn {trained}, this is {installed} (major versions differ)"
    return None


def read_metadata(path: Path) -> dict[str, Any]:
    meta_path = metadata_path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    if not meta_path.is_file():
        raise ModelError(f"{path}: metadata {meta_path.name} not found beside it "
                         "(iotwatch train writes both)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{meta_path}: unreadable metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelError(f"{meta_path}: not iotwatch model metadata "
                         f"(expected format {FORMAT!r})")
    return meta


def load(path: Path, *, features: FeatureSpec | None = None) -> TrainedModel:
    """Load a model and check its metadata; every problem is a :class:`ModelError`.

    ``features``: the definition the caller expects (refused when the model's differs).
    """
    import joblib
    import sklearn

    meta = read_metadata(path)
    mismatch = version_mismatch(meta, sklearn.__version__)
    if mismatch:
        raise ModelError(f"{path}: {mismatch}; retrain it with iotwatch train")
    try:
        spec = FeatureSpec.from_dict(meta["features"])
        kind, scope = str(meta["kind"]), str(meta["scope"])
        metrics = tuple(str(m) for m in meta["metrics"])
        calibration = TailCalibration.from_dict(meta["calibration"])
        if kind not in kinds.KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        if scope not in ("stream", "device"):
            raise ValueError(f"scope must be 'stream' or 'device', got {scope!r}")
        if meta.get("feature_names") != spec.names(metrics):
            raise ValueError("feature_names do not follow from features and metrics")
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{metadata_path(path)}: invalid metadata ({exc})") from None
    if features is not None and features != spec:
        raise ModelError(f"{path}: trained on features {spec.to_dict()}, "
                         f"expected {features.to_dict()}")
    try:
        pipeline = joblib.load(path)
    except Exception as exc:  # a pickle can fail in any way: truncated, foreign, corrupt
        raise ModelError(f"{path}: corrupt model file ({type(exc).__name__}: {exc})") from None
    steps = getattr(pipeline, "named_steps", {})
    if "scale" not in steps or "model" not in steps:
        raise ModelError(f"{path}: not an iotwatch model pipeline")
    width = getattr(steps["scale"], "n_features_in_", None)
    if width != len(meta["feature_names"]):
        raise ModelError(f"{path}: the fitted model takes {width} features, the metadata "
                         f"names {len(meta['feature_names'])}")
    return TrainedModel(kind, dict(meta.get("params", {})), pipeline, spec, scope,
                        str(meta.get("target", "")), metrics, calibration,
                        dict(meta.get("training", {})), int(meta.get("seed", 42)))
