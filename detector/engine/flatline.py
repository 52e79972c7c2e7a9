"""A stuck sensor: how long the value has not moved, and how surprising that is.

A reading that stays within ``tolerance`` of the one before is a repeat. Each stream
learns how often it repeats itself (``p``, exponentially weighted over ``halflife``
readings, with a prior of half a repeat) and the longest run it has finished
(``longest``, fading with the same half-life). A run of ``k`` repeats scores
``(k - longest) * -log10(p)`` decades once it is longer than any recent normal run:
a noisy sensor that never repeats a value stands out after two or three repeats, a
quantised one or one with flat stretches every night only once it stays flat for
longer than it ever did. The score is already a surprise, so the
calibration uses it as it is (``surprise_score = True``) rather than fitting its
history, whose mostly-zero shape a normal fit describes badly.

>>> detector = FlatLine(halflife=1000)
>>> for i in range(200):
...     detector.learn_one(20.0 + (i % 7) * 0.1)  # a live sensor: never repeats
>>> round(detector.score_one(20.3), 2)  # the last value again: once in ~400 readings
2.57
>>> detector.learn_one(20.3)
>>> round(detector.score_one(20.3), 2)  # twice in a row
4.2
"""

from __future__ import annotations

import math
from typing import Any

from detector.engine.protocol import Base


class FlatLine(Base):
    __slots__ = ("tolerance", "halflife", "n", "last", "run", "repeats", "weight", "longest",
                 "_alpha")

    surprise_score = True

    def __init__(self, tolerance: float = 0.0, halflife: float = 10000.0) -> None:
        self.tolerance = tolerance
        self.halflife = halflife
        self.n = 0
        self.last = 0.0
        self.run = 0            # repeats in a row up to the last reading
        self.repeats = 0.0      # weighted count of repeats
        self.weight = 0.0       # weighted count of readings
        self.longest = 0.0      # longest finished run, fading
        self._alpha = 1.0 - 0.5 ** (1.0 / halflife)

    @property
    def ready(self) -> bool:
        return self.n >= 2

    def score_one(self, x: float) -> float:
        if not self.n or abs(x - self.last) > self.tolerance:
            return 0.0
        excess = self.run + 1 - self.longest
        if excess <= 0:
            return 0.0
        p = (self.repeats + 0.5) / (self.weight + 1.0)
        return excess * -math.log10(p)

    def learn_one(self, x: float) -> None:
        repeat = bool(self.n) and abs(x - self.last) <= self.tolerance
        if self.n:
            keep = 1.0 - self._alpha
            self.repeats = keep * self.repeats + repeat
            self.weight = keep * self.weight + 1.0
            self.longest *= keep
        if not repeat and self.run > self.longest:
            self.longest = float(self.run)
        self.run = self.run + 1 if repeat else 0
        self.last = x
        self.n += 1

    def state(self) -> dict[str, Any]:
        return {"n": self.n, "last": self.last, "run": self.run, "repeats": self.repeats,
                "weight": self.weight, "longest": self.longest}

    def load_state(self, state: dict[str, Any]) -> None:
        self.n, self.last, self.run = int(state["n"]), float(state["last"]), int(state["run"])
        self.repeats, self.weight = float(state["repeats"]), float(state["weight"])
        self.longest = float(state["longest"])
