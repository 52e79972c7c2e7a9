"""Trained models in ``iotwatch evaluate``: engine settings that run a model on a series.

``--model MODEL.joblib`` evaluates one trained file on every series. ``--model KIND``
trains a fresh model of that kind on each file's own training prefix (the rows the
evaluation does not count: SKAB's first 400, NAB's probation period) and evaluates it on
the whole file, which is the SKAB leaderboard's protocol. Either way the model runs inside
the engine as detector ``model:evaluated``, through the same calibration and alert
decisions as in the detector service. A device model replaces the per-device detector and
the per-metric streams are not scored, so the result is the model's alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from detector.evaluate.datasets import DatasetError, Series
from detector.models import artifact
from detector.models.artifact import ModelError, TrainedModel
from detector.models.features import FeatureSpec

NAME = "evaluated"
DEVICE_RULE = "+/+/_device"


@dataclass(frozen=True)
class ModelPlan:
    """A trained file to load, or a kind to train per file."""

    path: Path | None = None
    kind: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    spec: FeatureSpec = FeatureSpec()
    seed: int = 42
    # source of a held-out series -> the series before it to train on (tune's time split)
    earlier: dict[str, Series] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.path.stem if self.path is not None else str(self.kind)


@lru_cache(maxsize=8)
def _load(path: Path) -> TrainedModel:
    return artifact.load(path)


def covered(path: Path, series: list[Series]) -> list[Series]:
    """The series a trained file was made for (its stream glob, or its device)."""
    from detector.engine.streams import matches

    meta = artifact.read_metadata(path)
    target = str(meta.get("target", "#"))
    if meta.get("scope") == "device":
        chosen = [s for s in series if f"{s.site}/{s.device}" == target or target == "#"]
    else:
        chosen = [s for s in series if not s.multivariate
                  and matches(target, f"{s.site}/{s.device}/{s.metrics[0]}")]
    if not chosen:
        raise ModelError(f"{path}: trained for {meta.get('scope')} {target}, which no series "
                         f"here is (e.g. {', '.join(s.key for s in series[:3])})")
    return chosen


def model_for(plan: ModelPlan, series: Series) -> TrainedModel:
    if plan.path is not None:
        return _load(plan.path)
    from detector.models import data
    from detector.models.train import fit

    device = f"{series.site}/{series.device}" if series.multivariate else None
    earlier = plan.earlier.get(series.source)
    if earlier is not None:
        # a time split's held-out tail: the model learns the normal rows of its file's head
        training = data.from_series([earlier], stream=None, device=device,
                                    source=earlier.source)
        what = f"the normal rows of {earlier.source}"
    else:
        training = data.from_series([series], stream=None, device=device,
                                    first_rows=series.warmup_rows, source=series.source)
        what = f"its first {series.warmup_rows} rows"
    try:
        return fit(str(plan.kind), training, plan.spec, plan.params, seed=plan.seed)
    except ValueError as exc:
        raise DatasetError(f"{series.source}: cannot train on {what}: {exc}") from None


def engine_settings(plan: ModelPlan, series: Series, base: Any) -> tuple[Any, bool]:
    """(engine settings running the model on ``series``, score the device only)."""
    from detector.engine.settings import MODEL_PREFIX, EngineSettings
    from detector.models.service import register

    model = model_for(plan, series)
    register({NAME: model})
    name = f"{MODEL_PREFIX}{NAME}"
    raw = {key: value for key, value in base.model_dump().items()
           if key in EngineSettings.model_fields}  # not the service's models: section
    if model.scope == "device":
        if not series.multivariate or set(model.metrics) != set(series.metrics):
            raise ModelError(f"{plan.path or plan.kind}: a device model of metrics "
                             f"{', '.join(model.metrics)}; {series.source} has "
                             f"{', '.join(series.metrics)}")
        raw["streams"] = [*raw["streams"], {"match": DEVICE_RULE, "enabled": [name]}]
        raw["detectors"]["multivariate"]["enabled"] = True
        return EngineSettings.model_validate(raw), True
    if series.multivariate:
        raise ModelError(f"{plan.path}: a stream model; {series.source} has "
                         f"{len(series.metrics)} metrics (train one with --device)")
    raw["enabled"] = [name]
    return EngineSettings.model_validate(raw), False
