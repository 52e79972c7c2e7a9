"""Configuration of forecasting and early warning: ``detector.forecast`` in detector.yaml.

Defaults apply to every stream once ``enabled``; ``streams`` rules (in order, later
ones win) override them per ``site/device/metric`` pattern, and ``warnings`` are the
early-warning rules. Durations are seconds, horizons are steps (one step is the
stream's sampling interval, measured from its first readings).

>>> settings = ForecastSettings.model_validate({"enabled": True, "streams": [
...     {"match": "+/+/power", "season_s": 0}, {"match": "plant-2/#", "enabled": False}]})
>>> resolve(settings, "plant-1/pump/power").season_s, resolve(settings, "plant-2/pump/power")
(None, None)
>>> resolve(settings, "plant-1/boiler/temperature").season_s
86400.0
>>> from iotwatch.config import errors_of
>>> errors_of(ForecastSettings, {"warnings": [{"match": "+/+/t", "limit": 90, "direction": "up"}]})
["warnings.0.direction: must be one of 'above' or 'below', got 'up'"]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator

from iotwatch.config import StrictModel


def _pattern(value: str) -> str:
    from detector.engine.streams import check_pattern

    check_pattern(value)
    return value


class ModelSettings(StrictModel):
    """The Holt-Winters model's parameters (see detector/forecast/model.py)."""

    alpha: float = Field(default=0.2, gt=0, le=1)
    beta: float = Field(default=0.01, ge=0, le=1)
    gamma: float = Field(default=0.1, ge=0, le=1)
    phi: float = Field(default=0.98, gt=0, le=1)
    clip: float = Field(default=5.0, gt=0)
    max_season: int = Field(default=2016, ge=2, le=100_000)
    warmup: int = Field(default=50, ge=1)


class ForecastRule(StrictModel):
    """Overrides for the streams matching ``match``."""

    match: str
    enabled: bool | None = None
    season_s: float | None = Field(default=None, ge=0)
    horizon: int | None = Field(default=None, ge=1, le=10_000)
    every: int | None = Field(default=None, ge=1)

    _check_match = field_validator("match")(classmethod(lambda cls, v: _pattern(v)))


class WarningRule(StrictModel):
    """Warn when the forecast says a matching stream crosses ``limit`` within ``within_s``."""

    match: str
    limit: float
    direction: Literal["above", "below"] = "above"
    within_s: float = Field(default=1800.0, gt=0)
    severity: Literal["warning", "critical"] = "warning"
    rule: str = Field(default="early_warning", min_length=1, max_length=64)
    # Forecasts in a row that no longer cross before the warning resolves (hysteresis).
    resolve_forecasts: int = Field(default=3, ge=1)

    _check_match = field_validator("match")(classmethod(lambda cls, v: _pattern(v)))


class ForecastSettings(StrictModel):
    """``detector.forecast``: per-stream forecasts, their points and early warnings."""

    enabled: bool = False
    season_s: float = Field(default=86_400.0, ge=0)  # 0: no season (level and trend only)
    horizon: int = Field(default=12, ge=1, le=10_000)  # steps ahead
    every: int = Field(default=6, ge=1)              # forecast after every N readings
    interval: float = Field(default=0.9, gt=0, lt=1)  # nominal prediction interval
    measurement: str = Field(default="forecasts", min_length=1)
    model: ModelSettings = ModelSettings()
    streams: list[ForecastRule] = []
    warnings: list[WarningRule] = []


@dataclass(frozen=True, slots=True)
class StreamForecast:
    """What applies to one stream once the rules are applied."""

    season_s: float | None
    horizon: int
    every: int


def resolve(settings: ForecastSettings, stream: str,
            force: bool = False) -> StreamForecast | None:
    """The stream's forecast settings, or None when it is not forecast (``force``: it is,
    e.g. because an early-warning rule watches it)."""
    from detector.engine.streams import matches

    enabled, season_s = settings.enabled, settings.season_s
    horizon, every = settings.horizon, settings.every
    for rule in settings.streams:
        if not matches(rule.match, stream):
            continue
        enabled = enabled if rule.enabled is None else rule.enabled
        season_s = season_s if rule.season_s is None else rule.season_s
        horizon = horizon if rule.horizon is None else rule.horizon
        every = every if rule.every is None else rule.every
    if not enabled and not force:
        return None
    return StreamForecast(season_s or None, horizon, every)
