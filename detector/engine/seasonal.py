"""Seasonal residual: how far a reading is from what this time of day usually looks like.

Most IoT streams follow the day (load, temperature, traffic). A fault can keep the value
inside its daily range, at the wrong time: a peak that does not come, a night that looks
like noon. The forecaster of ``iotwatch forecast`` (robust additive Holt-Winters on the
stream's own sampling steps, ``detector/forecast/model.py``) already learns the level,
trend and daily shape per stream; this detector scores a reading by its distance from
that model's expectation for the reading's step, in units of the model's mean absolute
one-step error. The season is learned on at most ``max_season`` steps (coarser steps on
fast streams), which bounds the state. Its inputs are ``(ts, value)`` pairs (``timed``):
the phase follows the clock, not the reading count. ``StrongestSeason`` holds one such
model per configured season (a day and a week by default) and scores with the strongest.

>>> detector = SeasonalResidual(season_s=60.0, max_season=12, warmup=20)
>>> for t in range(400):   # a 60 s cycle sampled every 5 s
...     detector.learn_one((1000.0 + 5 * t, 20.0 + (t % 12) * 0.5 + 0.05 * (t % 5)))
>>> detector.score_one((3000.0, 22.0)) < 3 < detector.score_one((3000.0, 25.0))   # due: 22.0
True
"""

from __future__ import annotations

import math
from typing import Any

from detector.engine.protocol import Base
from detector.forecast.model import Forecaster

_MAE_TO_STD = math.sqrt(math.pi / 2)  # std of normal errors / their mean absolute value
_ERROR_FLOOR = 1e-4  # x |expected|: a noiseless model still has a scale (as std_floor_relative)


class SeasonalResidual(Base):
    __slots__ = ("season_s", "max_season", "warmup", "min_strength", "model", "_strength",
                 "_ready", "_strength_step")

    timed = True  # score_one / learn_one take (ts, value)

    def __init__(self, season_s: float = 86_400.0, max_season: int = 96,
                 warmup: int = 50, min_strength: float = 0.64) -> None:
        self.season_s = season_s
        self.max_season = max_season
        self.warmup = warmup
        self.min_strength = min_strength
        self.model = Forecaster(season_s, max_season=max_season, warmup=warmup)
        self._forget()

    def _forget(self) -> None:
        self._strength = 0.0
        self._ready = False
        self._strength_step = -2   # the model's step these were computed at

    @property
    def strength(self) -> float:
        """Strength of the season, ``var(S) / (var(S) + var(error))`` (Wang, Smith & Hyndman,
        2006), from the learned shape and the one-step error; recomputed once per step."""
        self._refresh()
        return self._strength

    def _refresh(self) -> None:
        # Both change only when the model closes a step: computed once per step.
        model = self.model
        if self._strength_step == model.step:
            return
        self._strength_step = model.step
        seasonal = model.seasonal
        m = len(seasonal)
        mean = sum(seasonal) / m if m else 0.0
        shape = sum((v - mean) ** 2 for v in seasonal) / m if m else 0.0
        noise = (model.mae * _MAE_TO_STD) ** 2
        self._strength = shape / (shape + noise) if shape + noise > 0 else 0.0
        self._ready = model.ready and self._strength >= self.min_strength

    @property
    def ready(self) -> bool:
        # A stream without a marked season has nothing for this detector to say: it stays
        # out of the calibration (scored 0, not learned) until it has one.
        if self._strength_step != self.model.step:
            self._refresh()
        return self._ready

    def score_one(self, x: tuple[float, float]) -> float:
        model = self.model
        if self._strength_step != model.step:
            self._refresh()
        if not self._ready:
            return 0.0
        ts, value = x
        ahead = math.floor((ts - model.origin) / model.step_s) - model.step
        if ahead < 1:
            return 0.0   # a late reading: its step is closed, the model will not learn it
        ahead = min(ahead, model.season)
        expected = model.expected(ahead)
        scale = max(model.mae, _ERROR_FLOOR * (abs(expected) + 1.0))
        return abs(value - expected) / scale

    def learn_one(self, x: tuple[float, float]) -> None:
        self.model.learn_one(*x)

    def state(self) -> dict[str, Any]:
        return self.model.state()

    def load_state(self, state: dict[str, Any]) -> None:
        self.model.load_state(state)
        self._forget()


class StrongestSeason(Base):
    """Seasonal residuals for several seasons; a reading is scored by the strongest one.

    A day explains an office building's temperature; a week explains a taxi fleet's
    demand, whose weekends differ from its weekdays. Each season keeps its own model and
    strength (``SeasonalResidual.strength``); the score is that of the ready season whose
    strength is the highest, so a stream is judged against the cycle that explains it
    best, and a weekly model only speaks once it has seen a week.

    >>> detector = StrongestSeason(seasons_s=[60.0, 3600.0], max_season=12, warmup=20)
    >>> day, week = detector.seasons
    >>> for t in range(400):   # a 60 s cycle sampled every 5 s, for 2,000 s
    ...     detector.learn_one((1000.0 + 5 * t, 20.0 + (t % 12) * 0.5 + 0.05 * (t % 5)))
    >>> day.ready, week.ready   # the longer season has not been seen once yet
    (True, False)
    >>> detector.score_one((3000.0, 22.0)) < 3 < detector.score_one((3000.0, 25.0))
    True
    """

    __slots__ = ("seasons_s", "max_season", "warmup", "min_strength", "seasons")

    timed = True

    def __init__(self, seasons_s: list[float] | tuple[float, ...] = (86_400.0, 604_800.0),
                 max_season: int = 96, warmup: int = 50, min_strength: float = 0.64) -> None:
        self.seasons_s = list(seasons_s)
        self.max_season = max_season
        self.warmup = warmup
        self.min_strength = min_strength
        self.seasons = [SeasonalResidual(season, max_season, warmup, min_strength)
                        for season in self.seasons_s]

    def _strongest(self) -> SeasonalResidual | None:
        best = None
        for season in self.seasons:
            if season.ready and (best is None or season.strength > best.strength):
                best = season
        return best

    @property
    def ready(self) -> bool:
        return any(season.ready for season in self.seasons)

    def score_one(self, x: tuple[float, float]) -> float:
        best = self._strongest()
        return 0.0 if best is None else best.score_one(x)

    def learn_one(self, x: tuple[float, float]) -> None:
        for season in self.seasons:
            season.learn_one(x)

    def state(self) -> dict[str, Any]:
        return {"seasons": [season.state() for season in self.seasons]}

    def load_state(self, state: dict[str, Any]) -> None:
        for season, saved in zip(self.seasons, state["seasons"], strict=True):
            season.load_state(saved)
