"""A seeded random detector: the floor every real detector has to beat.

The score of the n-th reading is a hash of (seed, n), so scoring changes nothing and a
seeded run repeats. On the NAB subset it scores about 28 with an optimised threshold.

>>> a, b = RandomScores(seed=7), RandomScores(seed=7)
>>> a.score_one(1.0) == b.score_one(99.0) == a.score_one(2.0)
True
>>> a.learn_one(1.0)
>>> a.score_one(1.0) == b.score_one(1.0)
False
"""

from __future__ import annotations

from typing import Any

from detector.engine.protocol import Base

_MASK = (1 << 64) - 1


def _splitmix64(value: int) -> int:
    value = (value + 0x9E3779B97F4A7C15) & _MASK
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


class RandomScores(Base):
    __slots__ = ("seed", "n")

    def __init__(self, seed: int = 42) -> None:
        self.seed = seed
        self.n = 0

    @property
    def ready(self) -> bool:
        return True

    def score_one(self, x: float) -> float:
        return _splitmix64(_splitmix64(self.seed) ^ self.n) / 2.0**64

    def learn_one(self, x: float) -> None:
        self.n += 1

    def state(self) -> dict[str, Any]:
        return {"n": self.n}

    def load_state(self, state: dict[str, Any]) -> None:
        self.n = int(state["n"])
