"""Sequence gaps per stream: readings lost, duplicated or reordered before they got here.

Publishers number each stream's readings (``seq`` in the reading contract). A broker that
drops messages for a subscriber that fell behind (Mosquitto's ``max_queued_messages``,
1000 in a stock configuration) leaves no other trace in the detector, so the numbers are
checked here. Per stream the tracker keeps the highest ``seq`` seen and which of the
``WINDOW`` numbers below it arrived: a late reading is told from a duplicate, and the
state per stream stays a few integers. A jump back of more than ``WINDOW``, or below the
stream's first number, is a publisher that started counting again. Pure: no I/O, no clock.

>>> tracker = SequenceTracker()
>>> for seq in (0, 1, 2, 5, 3, 3, 6):
...     tracker.observe("s/d/t", seq)
>>> tracker.stream("s/d/t")
{'received': 7, 'missing': 1, 'duplicated': 1, 'out_of_order': 1, 'restarts': 0, 'last_seq': 6}

The loss rate over the last ``window`` expected readings decides ``degraded``:

>>> tracker = SequenceTracker(max_gap_rate=0.05, window=100)
>>> for seq in [*range(50), *range(60, 100)]:
...     tracker.observe("s/d/t", seq)
>>> round(tracker.gap_rate(), 3), tracker.degraded
(0.1, True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

WINDOW = 256  # seqs below the highest one whose arrival is remembered, per stream
_MASK = (1 << WINDOW) - 1
MIN_EXPECTED = 100  # fewer expected readings than this never make the service degraded
LIKELY_CAUSE = (
    "Likely cause: the MQTT broker dropped readings queued for the detector while it was "
    "behind or offline. Mosquitto drops them beyond max_queued_messages (stock: 1000) or "
    "max_queued_bytes per client: raise both in mosquitto.conf (iotwatch's "
    "mosquitto/mosquitto.conf sets max_queued_messages 1000000 and max_queued_bytes 0). "
    "If the broker kept everything, the publishers skipped numbers (sensor dropouts).")


class _Stream:
    __slots__ = ("first", "high", "seen", "received", "missing", "duplicated",
                 "out_of_order", "restarts")

    def __init__(self, seq: int) -> None:
        self.first = seq  # where this run of numbers started: nothing below it was missed
        self.high = seq
        self.seen = 1  # bit i: seq high - i arrived
        self.received = 1
        self.missing = 0
        self.duplicated = 0
        self.out_of_order = 0
        self.restarts = 0


class SequenceTracker:
    """Counts missing, duplicated and out-of-order readings per stream and in total.

    ``max_gap_rate`` bounds the share of expected readings that may be missing over the
    last ``window`` to ``2 * window`` of them; above it the tracker is ``degraded`` until
    the rate falls to half the bound. ``on_change(degraded, reason)`` is called at each
    such change (the service logs it).
    """

    def __init__(self, max_gap_rate: float = 0.01, window: int = 10_000,
                 on_change: Callable[[bool, str], None] | None = None) -> None:
        self.max_gap_rate = max_gap_rate
        self.window = window
        self.on_change = on_change
        self.degraded = False
        self._streams: dict[str, _Stream] = {}
        # "skipped" only grows (a Prometheus counter); "missing" is skipped - out_of_order.
        self.totals = {"received": 0, "skipped": 0, "missing": 0, "duplicated": 0,
                       "out_of_order": 0, "restarts": 0}
        # Two blocks of expected readings: the current one and the one before.
        self._expected = [0, 0]
        self._lost = [0, 0]

    def observe(self, stream: str, seq: int) -> None:
        """Account for one reading of ``stream`` numbered ``seq``."""
        totals = self.totals
        totals["received"] += 1
        state = self._streams.get(stream)
        if state is None:
            self._streams[stream] = _Stream(seq)
            self._count(1, 0)
            return
        state.received += 1
        step = seq - state.high
        if step > 0:
            gap = step - 1
            state.high = seq
            state.seen = ((state.seen << step) | 1) & _MASK if step < WINDOW else 1
            if gap:
                state.missing += gap
                totals["missing"] += gap
                totals["skipped"] += gap
            self._count(step, gap)
        elif -step < WINDOW and seq >= state.first:
            bit = 1 << -step
            if state.seen & bit:
                state.duplicated += 1
                totals["duplicated"] += 1
            else:  # counted missing when the jump past it came; it was only late
                state.seen |= bit
                state.missing -= 1
                state.out_of_order += 1
                totals["missing"] -= 1
                totals["out_of_order"] += 1
                self._lost[1] -= 1
        else:  # far behind, or before the first: the publisher started counting again
            state.first = state.high = seq
            state.seen = 1
            state.restarts += 1
            totals["restarts"] += 1
            self._count(1, 0)

    def _count(self, expected: int, lost: int) -> None:
        self._expected[1] += expected
        self._lost[1] += lost
        if lost:
            self._check()
        if self._expected[1] >= self.window:
            self._expected = [self._expected[1], 0]
            self._lost = [self._lost[1], 0]
            self._check()

    def gap_rate(self) -> float:
        """Missing readings per expected reading, over the last ``window`` or more."""
        expected = self._expected[0] + self._expected[1]
        if expected < MIN_EXPECTED:
            return 0.0
        return max(0, self._lost[0] + self._lost[1]) / expected

    def reason(self) -> str:
        """What ``/health`` says while degraded."""
        streams = self.streams_with_gaps()
        return (f"readings are missing: {self.gap_rate():.1%} of the recent ones by their "
                f"seq numbers (above the bound of {self.max_gap_rate:.1%}); "
                f"{self.totals['missing']} missing in total on {streams} "
                f"stream{'' if streams == 1 else 's'}")

    def _check(self) -> None:
        rate = self.gap_rate()
        if not self.degraded and rate > self.max_gap_rate:
            self.degraded = True
            if self.on_change is not None:
                self.on_change(True, self.reason())
        elif self.degraded and rate <= self.max_gap_rate / 2:
            self.degraded = False
            if self.on_change is not None:
                self.on_change(False, f"missing readings back to {rate:.1%} of the recent ones")

    def streams_with_gaps(self) -> int:
        return sum(1 for state in self._streams.values() if state.missing > 0)

    def stream(self, stream: str) -> dict[str, Any] | None:
        """The counts of one stream, or None when it never carried a ``seq``."""
        state = self._streams.get(stream)
        if state is None:
            return None
        return {"received": state.received, "missing": state.missing,
                "duplicated": state.duplicated, "out_of_order": state.out_of_order,
                "restarts": state.restarts, "last_seq": state.high}

    def __len__(self) -> int:
        return len(self._streams)
