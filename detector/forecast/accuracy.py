"""Forecast accuracy on a recording, online, against the seasonal-naive forecast.

The forecaster runs over the readings in order exactly as in the detector service;
after every ``every`` readings it forecasts ``horizon`` steps, and each forecast is
scored when its step closes. The baseline on the same points is the seasonal-naive
forecast made at the same moment: the value one season before the target step (for a
stream without season, the last value). Steps the model imputed over a gap are not
scored, nor targets whose naive value fell in a gap.

>>> import math
>>> ts = [600.0 * i for i in range(2000)]            # 10-minute readings, a daily cycle
>>> values = [20 + 5 * math.sin(2 * math.pi * i / 144) + 0.1 * (i % 3) for i in range(2000)]
>>> tally = Tally(horizon=6, interval=0.9)
>>> run_series(tally, ts, values, StreamForecast(86400.0, 6, 3), ModelSettings(), 0.9)
>>> result = tally.summary()
>>> result["mae"] < result["baseline_mae"], result["points"] > 1000
(True, True)
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from detector.forecast.model import Forecaster
from detector.forecast.settings import ModelSettings, StreamForecast


def smape(actual: float, predicted: float) -> float:
    """Symmetric absolute percentage error in percent (0 when both are 0)."""
    scale = abs(actual) + abs(predicted)
    return 0.0 if scale == 0 else 200.0 * abs(actual - predicted) / scale


@dataclass
class Tally:
    """Error sums per horizon step, for the model and the baseline on the same points."""

    horizon: int
    interval: float
    abs_error: list[float] = field(default_factory=list)
    smape: list[float] = field(default_factory=list)
    covered: list[int] = field(default_factory=list)
    baseline_abs: list[float] = field(default_factory=list)
    baseline_smape: list[float] = field(default_factory=list)
    count: list[int] = field(default_factory=list)
    seconds: float = 0.0
    readings: int = 0
    state_bytes: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("abs_error", "smape", "covered", "baseline_abs", "baseline_smape", "count"):
            setattr(self, name, [0] * self.horizon)

    def add(self, h: int, actual: float, value: float, lower: float, upper: float,
            naive: float) -> None:
        i = h - 1
        self.abs_error[i] += abs(actual - value)
        self.smape[i] += smape(actual, value)
        self.covered[i] += lower <= actual <= upper
        self.baseline_abs[i] += abs(actual - naive)
        self.baseline_smape[i] += smape(actual, naive)
        self.count[i] += 1

    def merge(self, other: Tally) -> None:
        for name in ("abs_error", "smape", "covered", "baseline_abs", "baseline_smape", "count"):
            mine, theirs = getattr(self, name), getattr(other, name)
            for i in range(self.horizon):
                mine[i] += theirs[i]
        self.seconds += other.seconds
        self.readings += other.readings
        self.state_bytes.extend(other.state_bytes)

    def summary(self) -> dict[str, Any]:
        """The ``forecast`` part of ``iotwatch evaluate --json`` (pooled over all points)."""
        n = sum(self.count)

        def mean(values: Sequence[float], count: int) -> float | None:
            return None if count == 0 else sum(values) / count

        return {
            "horizon": self.horizon, "interval": self.interval, "points": n,
            "mae": mean(self.abs_error, n), "smape": mean(self.smape, n),
            "coverage": mean(self.covered, n),
            "baseline_mae": mean(self.baseline_abs, n),
            "baseline_smape": mean(self.baseline_smape, n),
            "by_step": [{"h": i + 1, "points": c,
                         "mae": mean([self.abs_error[i]], c), "smape": mean([self.smape[i]], c),
                         "coverage": mean([self.covered[i]], c),
                         "baseline_mae": mean([self.baseline_abs[i]], c)}
                        for i, c in enumerate(self.count)],
            "us_per_reading": None if not self.readings
            else 1e6 * self.seconds / self.readings,
            "state_bytes_per_stream": None if not self.state_bytes
            else max(self.state_bytes),
        }


def run_series(tally: Tally, timestamps: Sequence[float], values: Sequence[float],
               stream: StreamForecast, model: ModelSettings, interval: float) -> None:
    """Forecast one stream online over its readings; add every scored point to ``tally``."""
    forecaster = Forecaster(stream.season_s, interval=interval, **model.model_dump())
    horizon, every = stream.horizon, stream.every
    history: dict[int, float] = {}       # closed step -> its observed mean
    pending: dict[int, list[tuple[int, float, float, float, float]]] = {}
    seconds = 0.0
    for n, (ts, value) in enumerate(zip(timestamps, values, strict=True), start=1):
        before = forecaster.step
        started = time.perf_counter()
        forecaster.learn_one(ts, value)
        seconds += time.perf_counter() - started
        if forecaster.step != before:
            closed = forecaster.step
            actual = forecaster.last_mean
            history[closed] = actual
            for h, predicted, lower, upper, naive in pending.pop(closed, ()):
                tally.add(h, actual, predicted, lower, upper, naive)
            for imputed in range(before + 1, closed):
                pending.pop(imputed, None)
            history.pop(closed - forecaster.season - horizon - 1, None)
        if n % every or not forecaster.ready:
            continue
        started = time.perf_counter()
        points = forecaster.forecast(horizon)
        seconds += time.perf_counter() - started
        last, season = forecaster.step, max(forecaster.season, 1)
        for h, point in enumerate(points, start=1):
            naive = history.get(last + h - season * math.ceil(h / season))
            if naive is not None:
                pending.setdefault(last + h, []).append(
                    (h, point.value, point.lower, point.upper, naive))
    tally.seconds += seconds
    tally.readings += len(values)
    tally.state_bytes.append(forecaster.state_bytes())
