"""The seasonal detector: each season's model, and the strongest season scoring."""

from __future__ import annotations

import math
import random

from detector.engine import Engine, EngineSettings
from detector.engine.seasonal import StrongestSeason

HOUR = 3600.0
DAY = 24 * HOUR
WEEK = 7 * DAY


def taxi_demand(ts: float, rng: random.Random) -> float:
    """Hourly demand with a daily shape whose weekends (days 5 and 6) are half as busy."""
    day = int(ts // DAY) % 7
    shape = 100.0 + 60.0 * math.sin(2 * math.pi * (ts % DAY) / DAY)
    return shape * (0.5 if day >= 5 else 1.0) + rng.gauss(0.0, 2.0)


def seasons(*seconds: float) -> StrongestSeason:
    return StrongestSeason(seasons_s=seconds, max_season=96, warmup=50)


def test_a_weekday_that_looks_like_a_weekend_is_scored_by_the_weekly_model():
    rng = random.Random(3)
    day_only, day_and_week = seasons(DAY), seasons(DAY, WEEK)
    ts = 0.0
    for _ in range(int(5 * WEEK / (HOUR / 2))):  # five weeks of half-hourly readings
        value = taxi_demand(ts, rng)
        day_only.learn_one((ts, value))
        day_and_week.learn_one((ts, value))
        ts += HOUR / 2
    weekly = day_and_week.seasons[1]
    assert weekly.ready and weekly.strength > day_and_week.seasons[0].strength
    # Monday noon of week six at its weekend level (a holiday): only the week knows.
    monday_noon = 5 * WEEK + 12 * HOUR + 6 * HOUR
    holiday = taxi_demand(monday_noon + 5 * DAY, random.Random(0))  # a Saturday's value
    usual = taxi_demand(monday_noon, random.Random(0))
    assert day_and_week.score_one((monday_noon, holiday)) > 3 * max(
        1.0, day_and_week.score_one((monday_noon, usual)))
    assert day_and_week.score_one((monday_noon, holiday)) > day_only.score_one(
        (monday_noon, holiday))


def test_state_round_trips_every_season():
    rng = random.Random(5)
    detector, restored = seasons(DAY, WEEK), seasons(DAY, WEEK)
    for step in range(3000):
        ts = step * HOUR / 2
        detector.learn_one((ts, taxi_demand(ts, rng)))
    restored.load_state(detector.state())
    probe = (3000 * HOUR / 2, 140.0)
    assert restored.score_one(probe) == detector.score_one(probe)
    assert restored.ready == detector.ready


def test_the_default_engine_runs_a_day_and_a_week():
    settings = EngineSettings()
    assert settings.detectors.seasonal.seasons_s == [DAY, WEEK]
    engine = Engine(settings)
    engine.process("s", "d", "m", 0.0, 1.0)
    seasonal = engine._streams["s/d/m"].detectors[engine.settings.enabled.index("seasonal")]
    assert [s.season_s for s in seasonal.seasons] == [DAY, WEEK]
