"""The per-stream forecaster: accuracy on known shapes, time-based steps, bounded state."""

from __future__ import annotations

import math
import random

import orjson
import pytest

from detector.forecast.accuracy import Tally, run_series
from detector.forecast.model import Forecaster
from detector.forecast.settings import ModelSettings, StreamForecast

DAY = 86_400.0
STEP = 300.0  # 5-minute readings: 288 a day


def daily(i: int, noise: random.Random, sigma: float = 0.3) -> float:
    return 50 + 10 * math.sin(2 * math.pi * i * STEP / DAY) + noise.gauss(0, sigma)


def test_learns_a_drifting_daily_cycle_and_beats_the_seasonal_naive_forecast():
    noise = random.Random(1)
    ts = [1.7e9 + STEP * i for i in range(288 * 8)]
    tally = Tally(horizon=12, interval=0.9)
    drift = 2.0 / 288  # the level rises 2 a day: yesterday's value is 2 off
    run_series(tally, ts, [daily(i, noise) + drift * i for i in range(len(ts))],
               StreamForecast(DAY, 12, 4), ModelSettings(), 0.9)
    result = tally.summary()
    assert result["points"] > 3000
    assert result["mae"] < 0.5 * result["baseline_mae"]
    # Gaussian noise: the online quantile gives close to the nominal coverage.
    assert 0.8 <= result["coverage"] <= 0.98


def test_forecast_points_are_at_the_following_reading_times():
    model = Forecaster(DAY)
    noise = random.Random(2)
    for i in range(288 * 2):
        model.learn_one(1.7e9 + STEP * i, daily(i, noise))
    points = model.forecast(3)
    last = 1.7e9 + STEP * (288 * 2 - 1)
    assert [p.ts for p in points] == [last + STEP, last + 2 * STEP, last + 3 * STEP]
    assert all(p.lower < p.value < p.upper for p in points)
    # The band widens with the horizon.
    assert points[0].upper - points[0].lower < points[2].upper - points[2].lower


def test_a_gap_keeps_the_seasonal_phase_and_late_readings_are_not_learned():
    noise = random.Random(3)
    model = Forecaster(DAY)
    for i in range(288 * 3):
        model.learn_one(1.7e9 + STEP * i, daily(i, noise))
    resume = 288 * 3 + 40  # 40 readings never arrived
    before = model.step
    model.learn_one(1.7e9 + STEP * resume, daily(resume, noise))
    assert model.step == before + 41
    ahead = model.forecast(6)
    expected = [daily(resume + h, random.Random(0), sigma=0) for h in range(1, 7)]
    assert max(abs(p.value - e) for p, e in zip(ahead, expected, strict=True)) < 1.5
    model.learn_one(1.7e9 + STEP * (resume - 5), 1e6)  # late: its step is closed
    assert model.late == 1 and model.forecast(1) == ahead[:1]


def test_a_spike_barely_moves_the_forecast():
    noise = random.Random(4)
    model, clean = Forecaster(DAY), Forecaster(DAY)
    for i in range(288 * 3):
        value = daily(i, noise)
        model.learn_one(1.7e9 + STEP * i, value + (500.0 if i == 288 * 3 - 10 else 0.0))
        clean.learn_one(1.7e9 + STEP * i, value)
    shifted = max(abs(a.value - b.value) for a, b in zip(model.forecast(12), clean.forecast(12),
                                                         strict=True))
    assert shifted < 1.0


def test_fast_readings_with_a_long_season_keep_bounded_state():
    model = Forecaster(DAY, max_season=1440)
    for i in range(5000):  # one reading a second
        model.learn_one(1.7e9 + i, 20.0 + i % 10)
    assert model.per_step == 60 and model.season == 1440 and model.step_s == 60.0
    assert model.state_bytes() < 1440 * 8 + 2000


def test_without_a_season_it_follows_level_and_trend():
    # The default damped, slow trend (phi 0.98, beta 0.01: best on NAB) extrapolates a long
    # linear drift at a third of its slope; an undamped, quicker trend follows it.
    model = Forecaster(None, warmup=10, beta=0.05, phi=1.0)
    for i in range(400):
        model.learn_one(1000.0 + 10 * i, 5.0 + 0.1 * i)
    ahead = [p.value for p in model.forecast(5)]
    assert model.season == 1
    assert ahead == sorted(ahead) and ahead[0] < ahead[-1]   # the trend goes on
    assert all(abs(v - (5.0 + 0.1 * (399 + h))) < 0.5 for h, v in enumerate(ahead, 1))


@pytest.mark.parametrize("split", [5, 300, 1000])
def test_a_restored_model_continues_exactly(split):
    noise = random.Random(5)
    values = [(1.7e9 + STEP * i, daily(i, noise)) for i in range(1200)]
    whole, first = Forecaster(DAY), Forecaster(DAY)
    for ts, v in values:
        whole.learn_one(ts, v)
    for ts, v in values[:split]:
        first.learn_one(ts, v)
    restored = Forecaster(DAY)
    restored.load_state(orjson.loads(orjson.dumps(first.state())))
    for ts, v in values[split:]:
        restored.learn_one(ts, v)
    assert restored.forecast(12) == whole.forecast(12)
    assert restored.state() == whole.state()


def test_non_finite_values_are_ignored():
    model = Forecaster(None, warmup=5)
    for i in range(60):
        model.learn_one(float(i), 1.0)
    state = model.state()
    model.learn_one(60.0, float("nan"))
    model.learn_one(61.0, float("inf"))
    assert model.state() == state


def test_absurd_values_leave_the_model_finite_and_useful():
    noise = random.Random(6)
    model = Forecaster(DAY)
    for i in range(288 * 2):
        value = daily(i, noise)
        if i in (300, 301):
            value = 1e308 if i == 300 else -1e308
        model.learn_one(1.7e9 + STEP * i, value)
    ahead = model.forecast(6)
    assert all(math.isfinite(p.value) and math.isfinite(p.upper) for p in ahead)
    assert all(abs(p.value - 50) < 20 for p in ahead)
