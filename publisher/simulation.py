"""The simulated fleet as one time-ordered sequence of samples, plus the faults it injected.

Each stream is simulated on its own (its ticks, signal and faults use generators keyed by
the seed and its name); the fleet merges them by time, ties broken by stream order, so
the same fleet, seed and start always give the same sequence.

>>> from publisher.fleet import FleetSpec, expand
>>> fleet = FleetSpec.model_validate({
...     "templates": {"room": {"interval_s": 60, "metrics": {
...         "temperature": {"unit": "C", "baseline": 21, "noise": 0.2, "resolution": 0.1,
...                         "range": [-40, 85]},
...         "humidity": {"unit": "%", "baseline": 45, "noise": 1, "range": [0, 100],
...                      "interval_s": 120}}}},
...     "sites": {"lab": {"devices": [{"name": "mote-1", "template": "room"}]}}})
>>> sim = FleetSimulation(fleet, start=1768905000.0, seed=3, count=2)
>>> [(s.metric, s.offset_s) for s in sim]
[('temperature', 0.0), ('humidity', 0.0), ('temperature', 60.0), ('humidity', 120.0)]
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator

from publisher.faults import FaultLabel, StreamFaults, plan_scheduled
from publisher.fleet import FleetSpec, StreamSpec, expand
from publisher.samples import Sample
from publisher.signals import Signal, Ticks


class StreamSimulation:
    """One stream: sampling ticks, clean signal, faults; ``count``/``duration_s`` bound it."""

    def __init__(self, spec: StreamSpec, start: float, seed: int, faults: StreamFaults,
                 count: int | None, duration_s: float | None) -> None:
        self.spec = spec
        self.start = start
        self.faults = faults
        self._ticks = Ticks(start, spec.interval_s, spec.jitter_s, seed,
                            f"{spec.site}/{spec.device}")
        self._signal = Signal(spec.model, seed, spec.name)
        self._last: float | None = None
        self._k = 0
        limit = count
        if duration_s is not None:
            # Ticks whose nominal time lies inside the duration.
            by_time = int(-(-duration_s // spec.interval_s))
            limit = by_time if limit is None else min(limit, by_time)
        self._limit = limit
        self.next_ts: float | None = self._ticks.at(0) if limit != 0 else None

    def step(self) -> Sample | None:
        """The reading at ``next_ts`` (None when dropped) and move to the next tick."""
        ts = self.next_ts
        assert ts is not None, "the stream has ended"
        spec = self.spec
        outcome = self.faults.apply(ts, self._signal.value(ts), self._last)
        seq = self._k
        self._k += 1
        if self._limit is not None and self._k >= self._limit:
            self.next_ts = None
            self.faults.finish()
        else:
            self.next_ts = self._ticks.at(self._k)
        if outcome.value is None:
            return None
        if outcome.malformed is None:
            self._last = outcome.value
        return Sample(spec.site, spec.device, spec.metric, ts, ts - self.start, outcome.value,
                      seq, spec.model.unit, outcome.malformed)


class FleetSimulation:
    """Every stream of a fleet, merged by time. Iterate for samples; ``take_labels`` for
    the faults completed so far; ``stop`` then ``finish`` to end early and label the faults
    in progress (up to the last sample produced).
    """

    def __init__(self, fleet: FleetSpec, start: float, seed: int, count: int | None = None,
                 duration_s: float | None = None) -> None:
        specs = expand(fleet)
        scheduled = plan_scheduled(fleet, specs, start)
        self._labels: list[FaultLabel] = []
        self.streams = [
            StreamSimulation(spec, start, seed,
                             StreamFaults(spec, scheduled.get(spec.index, []),
                                          fleet.faults.random, start, seed, self._labels),
                             count, duration_s)
            for spec in specs]
        self.start = start
        self.labels_total = 0
        self._stopped = False

    def stop(self) -> None:
        """End the sequence after the samples already produced (a stop asked by the user)."""
        self._stopped = True

    def __iter__(self) -> Iterator[Sample]:
        heap = [(s.next_ts, s.spec.index) for s in self.streams if s.next_ts is not None]
        heapq.heapify(heap)
        streams = self.streams
        while heap and not self._stopped:
            _, index = heap[0]
            stream = streams[index]
            sample = stream.step()
            if stream.next_ts is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (stream.next_ts, index))
            if sample is not None:
                yield sample

    def take_labels(self) -> list[FaultLabel]:
        """Faults completed since the last call, in the order they completed."""
        labels = self._labels[:]
        self._labels.clear()
        self.labels_total += len(labels)
        return labels

    def finish(self) -> list[FaultLabel]:
        """Label the faults still in progress (the run stops here); return every label
        not taken yet."""
        for stream in self.streams:
            stream.faults.finish()
        return self.take_labels()


def default_start(now: float, speed: float, span_s: float | None) -> float:
    """Where simulated time starts when not configured: the current minute, or, for a
    bounded run faster than real time, early enough that the run ends at about now
    (timestamps far in the future are rejected by the detector).

    >>> default_start(1768905030.5, speed=1.0, span_s=3600.0)
    1768905000.0
    >>> default_start(1768905030.5, speed=0.0, span_s=3600.0)
    1768901400.0
    """
    minute = math.floor(now / 60.0) * 60.0
    if span_s is None or speed == 1.0:
        return minute
    return minute - math.ceil(span_s / 60.0) * 60.0


def span_s(fleet: FleetSpec, count: int | None, duration_s: float | None) -> float | None:
    """Simulated seconds a bounded run covers (None when unbounded)."""
    if duration_s is not None:
        return duration_s
    if count is None:
        return None
    return count * max(spec.interval_s for spec in expand(fleet))
