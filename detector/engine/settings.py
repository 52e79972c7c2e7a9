"""Configuration of the detection engine: detectors, calibration, decisions, per-stream rules.

Every field has a default, so ``EngineSettings()`` is a working engine. The detector
service nests these under its ``detector:`` section, so a key path such as
``detectors.hst.window_size`` reads ``detector.detectors.hst.window_size`` there.

>>> EngineSettings().enabled
['zscore', 'ewm_zscore', 'diff_zscore', 'range', 'flatline', 'seasonal']
>>> from iotwatch.config import errors_of
>>> errors_of(EngineSettings, {"detectors": {"hst": {"window_size": 0}}})
['detectors.hst.window_size: must be >= 1, got 0']
>>> errors_of(EngineSettings, {"enabled": ["zscore", "nope"]})[0][:48]
"enabled: unknown detector 'nope' (known: context"
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from iotwatch.config import StrictModel

# Robust learning: a reading whose raw z-score is above SKIP_ABOVE is not learned, up to
# MAX_SKIPS in a row (then a lasting change is learned). See docs/detection.md.
SKIP_ABOVE = 100.0
MAX_SKIPS = 10

# Trained models are named ``model:<name>`` in ``enabled`` lists; the detector service
# registers them from its ``models:`` section at start-up (see docs/models.md).
MODEL_PREFIX = "model:"
_MODEL_NAME = re.compile(r"^model:[A-Za-z0-9_.-]{1,64}$")

FeatureName = Literal["value", "diff", "mean", "std", "lag1", "lag2", "lag3"]


class ZScoreSettings(StrictModel):
    """Running mean and variance over the whole history (Welford)."""

    warmup: int = Field(default=30, ge=1)
    std_floor: float = Field(default=1e-9, ge=0)
    std_floor_relative: float = Field(default=1e-4, ge=0)
    skip_above: float | None = Field(default=SKIP_ABOVE, gt=0)
    max_skips: int = Field(default=MAX_SKIPS, ge=0)


class EwmZScoreSettings(StrictModel):
    """Exponentially weighted mean and variance: forgets, so level shifts are absorbed."""

    halflife: float = Field(default=150.0, gt=0)
    warmup: int = Field(default=30, ge=1)
    std_floor: float = Field(default=1e-9, ge=0)
    std_floor_relative: float = Field(default=1e-4, ge=0)
    skip_above: float | None = Field(default=SKIP_ABOVE, gt=0)
    max_skips: int = Field(default=MAX_SKIPS, ge=0)


class DiffZScoreSettings(StrictModel):
    """Exponentially weighted z-score of the step from the previous reading."""

    halflife: float = Field(default=500.0, gt=0)
    warmup: int = Field(default=30, ge=1)
    std_floor: float = Field(default=1e-9, ge=0)
    std_floor_relative: float = Field(default=1e-4, ge=0)
    # A step is learned at most this many standard deviations from the mean step.
    winsorize: float | None = Field(default=16.0, gt=0)


class FlatLineSettings(StrictModel):
    """A stuck sensor: readings in a row within ``tolerance`` of the one before."""

    tolerance: float = Field(default=0.0, ge=0)
    halflife: float = Field(default=10000.0, gt=0)


class RangeSettings(StrictModel):
    """A value further outside the range seen so far than ``tolerance`` x that range."""

    warmup: int = Field(default=1440, ge=1)
    tolerance: float = Field(default=0.05, ge=0)
    decades: float = Field(default=10.0, gt=0)
    max_stretch: float = Field(default=10.0, gt=0)
    max_skips: int = Field(default=MAX_SKIPS, ge=0)


class ContextSettings(StrictModel):
    """Novel sequences of value levels (bands of the range seen so far)."""

    # 16 bands, contexts of up to 3 bands: chosen on NAB realKnownCause (docs/detection.md);
    # the table is (levels + 2) ** order bytes and more (6.2 KB at the defaults).
    levels: int = Field(default=16, ge=1, le=30)
    order: int = Field(default=3, ge=1, le=3)
    warmup: int = Field(default=1440, ge=1)


class SeasonalSettings(StrictModel):
    """Distance from the expected value at this point of the season (Holt-Winters); with
    several seasons, each has its own model and the strongest one scores."""

    seasons_s: list[float] = Field(default_factory=lambda: [86_400.0, 604_800.0],
                                   min_length=1, max_length=4)
    max_season: int = Field(default=96, ge=2, le=2016)
    warmup: int = Field(default=50, ge=1)
    min_strength: float = Field(default=0.64, ge=0, le=1)

    @field_validator("seasons_s")
    @classmethod
    def _seasons_positive(cls, value: list[float]) -> list[float]:
        if any(not season > 0 for season in value):
            raise ValueError(f"every season must be > 0 seconds, got {value}")
        return value


class FeatureWindowSettings(StrictModel):
    """The short window of recent values a tree detector sees, every feature in [0, 1]."""

    features: list[FeatureName] = Field(default_factory=lambda: ["value", "diff", "std"])
    rolling: int = Field(default=8, ge=2, le=256)
    scaler: Literal["minmax", "standard"] = "standard"
    standard_halflife: float = Field(default=1000.0, gt=0)
    standard_width: float = Field(default=4.0, gt=0)

    @field_validator("features")
    @classmethod
    def _features_unique(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("must name at least one feature")
        if len(set(value)) != len(value):
            raise ValueError(f"features must not repeat, got {value}")
        return value


class HstSettings(FeatureWindowSettings):
    """Half-space trees with a structure shared by every stream (compact per-stream state)."""

    n_trees: int = Field(default=8, ge=1, le=100)
    height: int = Field(default=6, ge=1, le=14)
    window_size: int = Field(default=250, ge=1, le=65535)


class RiverHstSettings(FeatureWindowSettings):
    """River's own HalfSpaceTrees, one full instance per stream (about 1 MB each)."""

    n_trees: int = Field(default=10, ge=1, le=100)
    height: int = Field(default=8, ge=1, le=14)
    window_size: int = Field(default=250, ge=1)


class MultivariateSettings(StrictModel):
    """The per-device detector over the vector of a device's metrics."""

    enabled: bool = True
    method: Literal["device_hst", "mahalanobis"] = "mahalanobis"
    n_trees: int = Field(default=10, ge=1, le=100)
    height: int = Field(default=8, ge=1, le=14)
    window_size: int = Field(default=250, ge=1, le=65535)
    halflife: float = Field(default=500.0, gt=0)
    warmup: int = Field(default=30, ge=1)
    max_metrics: int = Field(default=16, ge=2, le=64)
    # mahalanobis: > 0 fits mean and covariance on the first this many readings, then keeps
    # them (the normal prefix); 0 follows them with the half-life.
    fit_readings: int = Field(default=0, ge=0)
    # A device alert resolves after this many normal readings in a row (null: the decision
    # section's resolve_readings); a stream rule on site/device/_device still overrides it.
    resolve_readings: int | None = Field(default=300, ge=1)
    # The device alert's threshold (null: decision.threshold); a stream rule overrides it.
    threshold: float | None = Field(default=0.58, ge=0, le=1)


class DetectorsSettings(StrictModel):
    """Parameters of every registered detector; ``enabled`` picks which ones run."""

    zscore: ZScoreSettings = ZScoreSettings()
    ewm_zscore: EwmZScoreSettings = EwmZScoreSettings()
    diff_zscore: DiffZScoreSettings = DiffZScoreSettings()
    flatline: FlatLineSettings = FlatLineSettings()
    range: RangeSettings = RangeSettings()
    context: ContextSettings = ContextSettings()
    seasonal: SeasonalSettings = SeasonalSettings()
    hst: HstSettings = HstSettings()
    river_hst: RiverHstSettings = RiverHstSettings()
    multivariate: MultivariateSettings = MultivariateSettings()


class LikelihoodSettings(StrictModel):
    """HTM-style anomaly likelihood on the combined calibrated score.

    The mean of the last ``window`` combined scores against a normal fit of those means
    over the last ``blocks`` x ``block`` readings, as a score on the calibration's scale;
    the stream's score is the larger of it and the combined score. Detectors whose raw
    score is already a surprise (range, flatline) bypass it.
    """

    enabled: bool = True
    window: int = Field(default=10, ge=1, le=1000)
    block: int = Field(default=100, ge=1)
    blocks: int = Field(default=86, ge=1, le=1000)
    warmup: int = Field(default=300, ge=1)
    std_floor: float = Field(default=0.02, gt=0)


class CalibrationSettings(StrictModel):
    """Turns each detector's raw scores into one score in [0, 1] comparable across streams.

    The recent level of a raw score (mean of its last ``n`` scores, for each ``n`` in
    ``short_windows``: a short one for sudden changes, a long one for sustained ones) is compared
    with the stream's own history of that level (exponentially weighted mean and variance,
    ``halflife`` readings). Its upper tail probability ``p`` gives the surprise
    ``s = -log10(p)`` and the score ``s / (s + half_decades)``: 0.5 means "seen once in
    10**half_decades readings". ``combine`` merges the detectors' calibrated scores.
    """

    short_windows: list[int] = Field(default_factory=lambda: [2, 60])
    halflife: float = Field(default=20000.0, gt=0)
    warmup: int = Field(default=100, ge=1)
    half_decades: float = Field(default=5.0, gt=0)
    combine: Literal["max", "mean"] = "max"
    std_floor: float = Field(default=1e-6, gt=0)
    # Robust learning: a raw score or level is learned at most this many standard
    # deviations above the stream's history of it (null: learned as it is).
    winsorize: float | None = Field(default=20.0, gt=0)
    likelihood: LikelihoodSettings = LikelihoodSettings()

    @field_validator("short_windows")
    @classmethod
    def _windows(cls, value: list[int]) -> list[int]:
        if not value or any(not 1 <= n <= 1000 for n in value) or len(set(value)) != len(value):
            raise ValueError(f"must be distinct window lengths between 1 and 1000, got {value}")
        return sorted(value)


class DecisionSettings(StrictModel):
    """When a calibrated score becomes an alert, and when the alert ends."""

    threshold: float = Field(default=0.65, ge=0, le=1)
    pending_readings: int = Field(default=1, ge=1)
    pending_seconds: float = Field(default=0.0, ge=0)
    resolve_readings: int = Field(default=60, ge=1)
    resolve_threshold: float | None = Field(default=None, ge=0, le=1)
    # Resolve on return: an alert also waits until the value is back within this many
    # standard deviations of the level it had before the alert (null: off). The level is
    # an exponentially weighted mean and variance of the value, learned while the stream
    # is normal (half-life ``return_halflife`` readings) and frozen while it alerts; it is
    # used once it has learned that many normal readings, and for that many readings
    # after the alert fired (a change that lasts longer is a new level, not an episode).
    resolve_return: float | None = Field(default=4.0, gt=0)
    return_halflife: float = Field(default=400.0, ge=1)
    # After a detection the reported score is held at 0 for this many readings (0: never).
    rest_readings: int = Field(default=200, ge=0)
    flap_max_episodes: int = Field(default=3, ge=1)
    flap_window_seconds: float = Field(default=3600.0, ge=0)
    critical_score: float = Field(default=0.9, ge=0, le=1)
    rule: str = Field(default="anomaly", min_length=1, max_length=64)

    @model_validator(mode="after")
    def _resolve_below_threshold(self) -> DecisionSettings:
        if self.resolve_threshold is not None and self.resolve_threshold > self.threshold:
            raise ValueError(f"resolve_threshold must be <= threshold ({self.threshold}), "
                             f"got {self.resolve_threshold}")
        return self


class StreamRule(StrictModel):
    """Overrides for the streams whose ``site/device/metric`` matches ``match``.

    Rules apply in order; a later matching rule overrides the fields an earlier one set.
    """

    match: str
    enabled: list[str] | None = None
    range: tuple[float, float] | None = None
    threshold: float | None = Field(default=None, ge=0, le=1)
    pending_readings: int | None = Field(default=None, ge=1)
    pending_seconds: float | None = Field(default=None, ge=0)
    resolve_readings: int | None = Field(default=None, ge=1)
    resolve_threshold: float | None = Field(default=None, ge=0, le=1)
    critical_score: float | None = Field(default=None, ge=0, le=1)

    @field_validator("match")
    @classmethod
    def _valid_pattern(cls, value: str) -> str:
        from detector.engine.streams import check_pattern

        check_pattern(value)
        return value

    @field_validator("range")
    @classmethod
    def _ordered_range(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not value[0] < value[1]:
            raise ValueError(f"must be [low, high] with low < high, got {list(value)}")
        return value

    @field_validator("enabled")
    @classmethod
    def _known_rule_detectors(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_detector_names(value)


class EngineSettings(StrictModel):
    """Everything the engine needs; the detector service's ``detector:`` section extends it."""

    detectors: DetectorsSettings = DetectorsSettings()
    enabled: list[str] = Field(
        default_factory=lambda: ["zscore", "ewm_zscore", "diff_zscore", "range", "flatline",
                                       "seasonal"])
    calibration: CalibrationSettings = CalibrationSettings()
    decision: DecisionSettings = DecisionSettings()
    streams: list[StreamRule] = []
    seed: int = 42

    @field_validator("enabled")
    @classmethod
    def _known_detectors(cls, value: list[str]) -> list[str]:
        return _check_detector_names(value)


def _check_detector_names(names: list[str]) -> list[str]:
    from detector.engine.registry import univariate_names

    known = univariate_names()
    if not names:
        raise ValueError(f"must name at least one detector (known: {', '.join(known)})")
    for name in names:
        if name.startswith(MODEL_PREFIX):
            if not _MODEL_NAME.match(name):
                raise ValueError(f"model names are 'model:' and [A-Za-z0-9_.-]{{1,64}}, "
                                 f"got {name!r}")
            continue
        if name not in known:
            raise ValueError(f"unknown detector {name!r} (known: {', '.join(known)})")
    if len(set(names)) != len(names):
        raise ValueError(f"detectors must not repeat, got {names}")
    return names
