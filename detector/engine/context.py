"""Contextual novelty: has this stream ever moved through these value levels in this order?

CAD OSE and ARTime, two of NAB's leaders, see a fault that stays inside the normal range
by its *sequence*: the stream goes from one level to another in a way it never did
before. This re-expresses the idea with a small fixed state. Values are quantised into
``levels`` equal bands of the range seen so far (two more symbols for below and above it;
the range is learned as the ``range`` check learns it, so one glitch does not stretch
it). The context of a reading is its band and the last ``order - 1`` *different* bands
before it (a stream sitting in one band adds nothing new). Each context of length 1 to
``order`` has a saturating count in one byte table; the raw score is the share of those
lengths whose context was never seen. Contexts are only learned after ``warmup``
readings, once the bands have stopped moving with the range. The calibration turns the
score into a surprise against this stream's own rate of novelty.

Selectable, not in the default (measured in docs/detection.md: it adds NAB points and
false alerts on the fault suite's fault-free daily cycles).

>>> detector = ContextNovelty(levels=4, order=3, warmup=20)
>>> for i in range(200):
...     detector.learn_one([0.0, 1.0, 2.0, 3.0][i % 4])    # up the staircase, again and again
>>> detector.score_one(0.0), round(detector.score_one(2.0), 3)   # after 3: 0 usual, 2 new
(0.0, 0.667)
"""

from __future__ import annotations

from typing import Any

from detector.engine.protocol import Base
from detector.engine.spatial import RangeCheck


class ContextNovelty(Base):
    __slots__ = ("levels", "order", "warmup", "n", "bands", "recent", "counts", "_offsets",
                 "_symbols")

    def __init__(self, levels: int = 16, order: int = 3, warmup: int = 1440) -> None:
        self.levels = levels
        self.order = order
        self.warmup = warmup
        self.n = 0
        self.bands = RangeCheck(warmup=warmup)   # the range seen so far, robustly learned
        self.recent: list[int] = []              # the last order - 1 different bands, oldest first
        self._symbols = levels + 2
        offsets, size = [], 0
        for length in range(1, order + 1):
            offsets.append(size)
            size += self._symbols ** length
        self._offsets = tuple(offsets)
        self.counts = bytearray(size)

    @property
    def ready(self) -> bool:
        return self.n >= self.warmup

    def _band(self, x: float) -> int:
        low, high = self.bands.low, self.bands.high
        if x < low:
            return self.levels
        if x > high:
            return self.levels + 1
        if high <= low:
            return 0
        return min(int((x - low) / (high - low) * self.levels), self.levels - 1)

    def _contexts(self, x: float) -> list[int]:
        """Table index of the context of each length 1..order ending at ``x``'s band."""
        band = self._band(x)
        sequence = self.recent if self.recent and self.recent[-1] == band else [*self.recent, band]
        codes, code, symbols = [], 0, self._symbols
        for length in range(1, min(len(sequence), self.order) + 1):
            code += sequence[-length] * symbols ** (length - 1)
            codes.append(self._offsets[length - 1] + code)
        return codes

    def score_one(self, x: float) -> float:
        if self.n < self.warmup:
            return 0.0
        counts = self.counts
        return sum(1 for index in self._contexts(x) if not counts[index]) / self.order

    def learn_one(self, x: float) -> None:
        self.bands.learn_one(x)
        self.n += 1
        if self.n < self.warmup:
            return  # the bands move while the range is explored: nothing learned is kept
        counts = self.counts
        for index in self._contexts(x):
            if counts[index] < 255:
                counts[index] += 1
        band = self._band(x)
        if not self.recent or self.recent[-1] != band:
            self.recent.append(band)
            if len(self.recent) > self.order - 1:
                del self.recent[0]

    def state(self) -> dict[str, Any]:
        return {"n": self.n, "bands": self.bands.state(), "recent": list(self.recent),
                "counts": self.counts.hex()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.n = int(state["n"])
        self.bands.load_state(state["bands"])
        self.recent = [int(v) for v in state["recent"]]
        counts = bytearray.fromhex(state["counts"])
        if len(counts) != len(self.counts):
            raise ValueError(f"context table of {len(counts)} bytes, expected {len(self.counts)}")
        self.counts = counts

