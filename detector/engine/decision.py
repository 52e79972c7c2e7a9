"""The per-stream alert state machine: calibrated scores in, firing/resolved events out.

States: ``normal`` -> ``pending`` (anomalous, not yet for long enough) -> ``firing`` ->
back to ``normal`` once the score stayed below the resolve threshold for
``resolve_readings`` readings in a row (hysteresis). A normal reading while pending
drops back to ``normal`` without an event. Flap suppression: when a stream already
fired ``flap_max_episodes`` times within ``flap_window_seconds``, a further episode is
held silently (state ``suppressed``: no firing, no resolve) instead of adding to a storm.
Severity is ``critical`` when the episode's peak score reached ``critical_score``.

Resolve on return (``resolve_return``): the detectors learn a changed level within a
few dozen readings, so their score alone would resolve an alert while the value is still
where the fault put it. The machine also keeps the value's level (EWM mean and variance,
learned only from normal readings, frozen while alerting), and an alert resolves only
once the value is back within ``resolve_return`` standard deviations of that level, as
an operator would judge "it is over". The level is used once it has learned
``return_halflife`` readings and for that many readings after firing: a change that
outlasts the level's own memory is a new level, and the alert resolves on the score.

Rest (CAD OSE's): once a reading's score reaches the threshold, the *reported* score of
the next ``rest_readings`` readings is held at 0 (``report``): a detection is news once,
and NAB charges, like an operator, every further flagged reading. The state machine
itself steps on the calibrated score, so an episode stays firing for as long as it lasts.

>>> from detector.engine.settings import DecisionSettings
>>> machine = AlertMachine(DecisionSettings(pending_readings=2, resolve_readings=2), "fp")
>>> steps = [machine.step(t, 1.0, s, {}) for t, s in enumerate([0.1, 0.7, 0.8, 0.2, 0.3, 0.1])]
>>> [(e.state, e.ts, e.started_at) for e in steps if e]
[('firing', 2, 1), ('resolved', 4, 1)]
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from detector.engine.protocol import VALUE_LIMIT
from detector.engine.settings import DecisionSettings

State = Literal["normal", "pending", "firing", "suppressed"]


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A transition of a stream's alert state machine."""

    state: Literal["firing", "resolved"]
    severity: str
    fingerprint: str
    rule: str
    started_at: float
    ts: float
    value: float
    score: float
    peak_score: float
    scores: dict[str, float]
    threshold: float


class AlertMachine:
    """One stream's alert state; ``step`` advances it, ``copy`` gives a throwaway twin."""

    __slots__ = ("settings", "fingerprint", "state", "count", "started_at", "peak",
                 "normal_count", "fired_at", "episodes", "rest_left", "level_n", "level",
                 "level_var", "firing_for", "_alpha")

    def __init__(self, settings: DecisionSettings, fingerprint: str) -> None:
        self.settings = settings
        self.fingerprint = fingerprint
        self.state: State = "normal"
        self.count = 0            # anomalous readings of the current episode
        self.started_at = 0.0     # ts of its first anomalous reading
        self.peak = 0.0           # its highest score
        self.normal_count = 0     # readings in a row below the resolve threshold
        self.fired_at: deque[float] = deque(maxlen=settings.flap_max_episodes)
        self.episodes = 0         # episodes that fired, for summaries
        self.rest_left = 0        # readings whose reported score is still held at 0
        # Resolve on return (settings.resolve_return): the value's level while normal.
        self.level_n = 0          # readings learned into it
        self.level = 0.0          # exponentially weighted mean of the value ...
        self.level_var = 0.0      # ... and variance
        self.firing_for = 0       # readings since the episode fired (or was held)
        self._alpha = 1.0 - 0.5 ** (1.0 / settings.return_halflife)

    @property
    def threshold(self) -> float:
        return self.settings.threshold

    def copy(self) -> AlertMachine:
        twin = AlertMachine(self.settings, self.fingerprint)
        twin.load_state(self.state_dict())
        return twin

    def report(self, score: float) -> float:
        """The score to report for this reading (0 during a rest); advances the rest.

        >>> from detector.engine.settings import DecisionSettings
        >>> machine = AlertMachine(DecisionSettings(threshold=0.5, rest_readings=2), "fp")
        >>> [machine.report(s) for s in (0.2, 0.9, 0.9, 0.8, 0.7, 0.1)]
        [0.2, 0.9, 0.0, 0.0, 0.7, 0.0]
        """
        if self.rest_left > 0:
            self.rest_left -= 1
            return 0.0
        if score >= self.settings.threshold:
            self.rest_left = self.settings.rest_readings
        return score

    def step(self, ts: float, value: float, score: float,
             scores: dict[str, float]) -> AlertEvent | None:
        """Advance with one reading's calibrated score; return the transition, if any."""
        settings = self.settings
        state = self.state
        if state == "normal":
            if score < settings.threshold:
                if settings.resolve_return is not None:
                    self._learn_level(value)
                return None
            self.state = "pending"
            self.count = 0
            self.started_at = ts
            self.peak = score
            state = "pending"
        if state == "pending":
            if score < settings.threshold:
                self.state = "normal"
                return None
            self.count += 1
            if score > self.peak:
                self.peak = score
            if (self.count < settings.pending_readings
                    or ts - self.started_at < settings.pending_seconds):
                return None
            self.normal_count = 0
            self.firing_for = 0
            if self._flapping(ts):
                self.state = "suppressed"
                return None
            self.state = "firing"
            self.fired_at.append(ts)
            self.episodes += 1
            return self._event("firing", ts, value, score, scores)
        # firing or suppressed
        resolve_below = (settings.threshold if settings.resolve_threshold is None
                         else settings.resolve_threshold)
        self.firing_for += 1
        if score >= resolve_below or (settings.resolve_return is not None
                                      and not self._returned(value)):
            self.normal_count = 0
            if score > self.peak:
                self.peak = score
            return None
        self.normal_count += 1
        if self.normal_count < settings.resolve_readings:
            return None
        was_firing = state == "firing"
        self.state = "normal"
        return self._event("resolved", ts, value, score, scores) if was_firing else None

    def _learn_level(self, value: float) -> None:
        """Learn a normal reading into the level the value must return to."""
        if not -VALUE_LIMIT <= value <= VALUE_LIMIT:  # as detectors see it; nan not learned
            if value != value:
                return
            value = VALUE_LIMIT if value > 0 else -VALUE_LIMIT
        n = self.level_n = self.level_n + 1
        alpha = self._alpha if self._alpha > 1.0 / n else 1.0 / n
        delta = value - self.level
        self.level += alpha * delta
        self.level_var = (1.0 - alpha) * (self.level_var + alpha * delta * delta)

    def _returned(self, value: float) -> bool:
        """Whether ``value`` is back at the level it had before the episode.

        Also true while that level has learned fewer than ``return_halflife`` normal
        readings (its spread says little yet) and once the episode has lasted that many
        readings (a change outlasting the level's own memory is a new level).
        """
        settings = self.settings
        memory = settings.return_halflife
        if self.level_n < memory or self.firing_for >= memory:
            return True
        spread = math.sqrt(self.level_var)
        return abs(value - self.level) <= settings.resolve_return * spread  # type: ignore[operator]

    def _flapping(self, ts: float) -> bool:
        settings = self.settings
        if settings.flap_window_seconds <= 0 or len(self.fired_at) < settings.flap_max_episodes:
            return False
        return ts - self.fired_at[0] < settings.flap_window_seconds

    def _event(self, state: Literal["firing", "resolved"], ts: float, value: float,
               score: float, scores: dict[str, float]) -> AlertEvent:
        settings = self.settings
        severity = "critical" if self.peak >= settings.critical_score else "warning"
        return AlertEvent(state=state, severity=severity, fingerprint=self.fingerprint,
                          rule=settings.rule, started_at=self.started_at, ts=ts, value=value,
                          score=score, peak_score=self.peak, scores=scores,
                          threshold=settings.threshold)

    def state_dict(self) -> dict[str, Any]:
        return {"state": self.state, "count": self.count, "started_at": self.started_at,
                "peak": self.peak, "normal_count": self.normal_count,
                "fired_at": list(self.fired_at), "episodes": self.episodes,
                "rest_left": self.rest_left, "level_n": self.level_n, "level": self.level,
                "level_var": self.level_var, "firing_for": self.firing_for}

    def load_state(self, state: dict[str, Any]) -> None:
        self.state = state["state"]
        self.count = int(state["count"])
        self.started_at = float(state["started_at"])
        self.peak = float(state["peak"])
        self.normal_count = int(state["normal_count"])
        self.fired_at = deque((float(t) for t in state["fired_at"]),
                              maxlen=self.settings.flap_max_episodes)
        self.episodes = int(state["episodes"])
        self.rest_left = int(state.get("rest_left", 0))  # snapshots from before rests
        self.level_n = int(state.get("level_n", 0))       # ... and before resolve on return
        self.level = float(state.get("level", 0.0))
        self.level_var = float(state.get("level_var", 0.0))
        self.firing_for = int(state.get("firing_for", 0))
