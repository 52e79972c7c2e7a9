"""A spatial (range) check: a value well outside every value this stream has shown so far.

Numenta's NAB detector flags a value that falls more than 5 % of the range seen so far
outside that range; measured on NAB it is worth more than any other single mechanism,
because most real faults push a sensor somewhere it has never been, however noisy it
is. Here the range is the lowest and highest value *learned* (score before learn, no
file min/max), the check starts after a fixed ``warmup`` of readings (a range seen for
a few readings says nothing), and the score is already a surprise in decades
(``surprise_score``): ``decades * (1 + excess / range)`` for a value ``excess`` beyond
the tolerance band, so just outside scores ``decades`` and further out scores more.

One absurd reading (a glitch) must not widen the range for good: a value more than
``max_stretch`` ranges outside it is not learned, up to ``max_skips`` in a row (then the
stream really moved, and the range follows).

>>> check = RangeCheck(warmup=10)
>>> for i in range(100):
...     check.learn_one(20.0 + (i % 10) * 0.1)   # 20.0 .. 20.9
>>> check.score_one(20.5), check.score_one(20.94), check.score_one(21.0) > 10
(0.0, 0.0, True)
"""

from __future__ import annotations

from typing import Any

from detector.engine.protocol import Base


class RangeCheck(Base):
    __slots__ = ("warmup", "tolerance", "decades", "max_stretch", "max_skips", "n", "low",
                 "high", "skips")

    surprise_score = True

    def __init__(self, warmup: int = 1440, tolerance: float = 0.05, decades: float = 10.0,
                 max_stretch: float = 10.0, max_skips: int = 10) -> None:
        self.warmup = warmup
        self.tolerance = tolerance
        self.decades = decades
        self.max_stretch = max_stretch
        self.max_skips = max_skips
        self.n = 0
        self.low = 0.0
        self.high = 0.0
        self.skips = 0

    @property
    def ready(self) -> bool:
        return self.n >= self.warmup

    def _excess(self, x: float) -> float:
        """How far beyond the tolerance band ``x`` is, in ranges (<= 0: inside)."""
        width = self.high - self.low
        if width <= 0.0:
            return 0.0
        if x > self.high:
            return (x - self.high) / width - self.tolerance
        if x < self.low:
            return (self.low - x) / width - self.tolerance
        return 0.0

    def score_one(self, x: float) -> float:
        if self.n < self.warmup:
            return 0.0
        excess = self._excess(x)
        return self.decades * (1.0 + excess) if excess > 0.0 else 0.0

    def learn_one(self, x: float) -> None:
        if not self.n:
            self.low = self.high = x
            self.n = 1
            return
        if self.n >= self.warmup and self._excess(x) > self.max_stretch:
            if self.skips < self.max_skips:
                self.skips += 1
                return
        else:
            self.skips = 0
        if x < self.low:
            self.low = x
        elif x > self.high:
            self.high = x
        self.n += 1

    def state(self) -> dict[str, Any]:
        return {"n": self.n, "low": self.low, "high": self.high, "skips": self.skips}

    def load_state(self, state: dict[str, Any]) -> None:
        self.n, self.skips = int(state["n"]), int(state["skips"])
        self.low, self.high = float(state["low"]), float(state["high"])
