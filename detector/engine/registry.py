"""Detector names as used in configuration, mapped to factories.

The engine imports no concrete detector: it asks the registry for a name. A stream
detector scores one value per reading; a device detector scores a device's metric vector.
An unknown name in ``enabled`` is a configuration error listing the known ones.

>>> univariate_names()
['context', 'diff_zscore', 'ewm_zscore', 'flatline', 'hst', 'random', 'range', 'river_hst', 'seasonal', 'zscore']
>>> from detector.engine.settings import EngineSettings
>>> create("zscore", EngineSettings(), StreamContext())
ZScore(warmup=30, std_floor=1e-09, std_floor_relative=0.0001, skip_above=100.0, max_skips=10)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from detector.engine.protocol import Detector
    from detector.engine.settings import EngineSettings


@dataclass(frozen=True, slots=True)
class StreamContext:
    """What a factory may know about the stream it builds for."""

    value_range: tuple[float, float] | None = None
    metric_ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)


Factory = Callable[["EngineSettings", StreamContext], "Detector[Any]"]


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    kind: Literal["stream", "device"]
    factory: Factory
    summary: str


REGISTRY: dict[str, Entry] = {}
# Trained models (``model:<name>``), registered at run time by the service's edge
# (detector/models/service.py) with the loaded model in the factory: not configuration
# names, so ``univariate_names`` does not list them.
MODELS: dict[str, Entry] = {}


def register(name: str, kind: Literal["stream", "device"], summary: str) -> Callable[[Factory],
                                                                                     Factory]:
    """Decorator adding a factory under ``name``."""

    def add(factory: Factory) -> Factory:
        REGISTRY[name] = Entry(name, kind, factory, summary)
        return factory

    return add


def univariate_names() -> list[str]:
    """Names usable in ``enabled`` (one value per reading)."""
    return sorted(name for name, entry in REGISTRY.items() if entry.kind == "stream")


def device_names() -> list[str]:
    return sorted(name for name, entry in REGISTRY.items() if entry.kind == "device")


def register_model(name: str, kind: Literal["stream", "device"], summary: str,
                   factory: Factory) -> None:
    """Add (or replace) the trained model detector ``name`` (``model:<name>``)."""
    MODELS[name] = Entry(name, kind, factory, summary)


def kind_of(name: str) -> str | None:
    """``"stream"`` or ``"device"`` for a registered name, None for an unknown one."""
    entry = REGISTRY.get(name) or MODELS.get(name)
    return entry.kind if entry is not None else None


def create(name: str, settings: EngineSettings, context: StreamContext) -> Detector[Any]:
    """A fresh detector ``name`` configured from ``settings`` for one stream."""
    try:
        entry = REGISTRY[name] if name in REGISTRY else MODELS[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise KeyError(f"unknown detector {name!r} (known: {known})") from None
    return entry.factory(settings, context)


def _window_params(section: Any) -> dict[str, Any]:
    params = section.model_dump()
    params["features"] = tuple(params["features"])
    return params


@register("zscore", "stream", "Welford running mean/std over the whole history")
def _zscore(settings: EngineSettings, context: StreamContext) -> Detector[Any]:
    from detector.engine.zscore import ZScore

    return ZScore(**settings.detectors.zscore.model_dump())


@register("ewm_zscore", "stream", "exponentially weighted mean/std (forgets; adapts to shifts)")
def _ewm_zscore(settings: EngineSettings, context: StreamContext) -> Detector[Any]:
    from detector.engine.zscore import EwmZScore

    return EwmZScore(**settings.detectors.ewm_zscore.model_dump())


@register("diff_zscore", "stream", "EWM z-score of the step from the previous reading")
def _diff_zscore(settings: EngineSettings, context: StreamContext) -> Detector[Any]:
    from detector.engine.zscore import DiffZScore

    return DiffZScore(**settings.detectors.diff_zscore.model_dump())


@register("hst", "stream", "compact half-space trees with a shared structure, on a feature window")
def _hst(settings: EngineSettings, context: StreamContext) -> Detector[Any]:
    from detector.engine.hst import HalfSpaceTreesDetector

    return HalfSpaceTreesDetector(**_window_params(settings.detectors.hst),
                                  value_range=context.value_range, seed=settings.seed)


@register("river_hst", "stream", "River's HalfSpaceTrees on the same feature window (~1 MB each)")
def _river_hst(settings: EngineSettings, context: StreamContext) -> Detector[Any]:
    from detector.engine.hst import RiverHalfSpaceTreesDetector

    return RiverHalfSpaceTreesDetector(**_window_params(settings.detectors.river_hst),
                                       value_range=context.value_range, seed=settings.seed)


@register("flatline", "stream", "how many readings in a row the value has not moved (stuck sensor)")
def _flatline(settings: EngineSettings, context: StreamContext) -> Detector[Any]:
    from detector.engine.flatline import FlatLine

    return FlatLine(**settings.detectors.flatline.model_dump())


@register("range", "stream", "a value further outside the range seen so far than 5 % of it")
def _range(settings: EngineSettings, context: StreamContext) -> Detector[Any]:
    from detector.engine.spatial import RangeCheck

    return RangeCheck(**settings.detectors.range.model_dump())


@register("context", "stream", "a sequence of value levels this stream never went through")
def _context(settings: EngineSettings, context: StreamContext) -> Detector[Any]:
    from detector.engine.context import ContextNovelty

    return ContextNovelty(**settings.detectors.context.model_dump())


@register("seasonal", "stream",
          "distance from this time of day's (or weekday's) usual value (Holt-Winters)")
def _seasonal(settings: EngineSettings, context: StreamContext) -> Detector[Any]:
    from detector.engine.seasonal import StrongestSeason

    return StrongestSeason(**settings.detectors.seasonal.model_dump())


@register("random", "stream", "seeded random scores: the baseline to beat")
def _random(settings: EngineSettings, context: StreamContext) -> Detector[Any]:
    from detector.engine.baseline import RandomScores

    return RandomScores(seed=settings.seed)


@register("device_hst", "device", "half-space trees over a device's metric vector")
def _device_hst(settings: EngineSettings, context: StreamContext) -> Detector[Any]:
    from detector.engine.multivariate import DeviceHalfSpaceTrees

    section = settings.detectors.multivariate
    return DeviceHalfSpaceTrees(section.n_trees, section.height, section.window_size,
                                section.max_metrics, context.metric_ranges, settings.seed)


@register("mahalanobis", "device", "Mahalanobis distance under a weighted covariance")
def _mahalanobis(settings: EngineSettings, context: StreamContext) -> Detector[Any]:
    from detector.engine.multivariate import Mahalanobis

    section = settings.detectors.multivariate
    return Mahalanobis(section.halflife, section.warmup, section.max_metrics,
                       fit_readings=section.fit_readings)
