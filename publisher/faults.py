"""Fault injection on one stream, and the ground truth it leaves behind.

Rules (the labels depend on them):

- A fault affects every sampling tick with ``start <= ts <= end``, and always at least
  the first tick at or after ``start`` (so a zero-duration spike hits one reading).
- Faults on one stream never overlap: one that comes due while another holds the
  stream starts when that one ends.
- Each fault that affected at least one tick gives one ``FaultLabel``: its kind, the
  times of the first and last affected ticks, and the parameters actually used
  (those not configured are drawn from the stream's own scale, see ``resolve_params``).

Kinds: ``spike`` (+magnitude), ``level_shift`` (+delta), ``drift`` (a ramp from 0 to
+delta over the window), ``stuck`` (the last reported value repeated), ``noise_burst``
(extra Gaussian noise of ``std``), ``dropout`` (no readings), ``garbage`` (``mode``
``out_of_range``: an impossible ``value``; ``malformed``: a broken ``payload``).

>>> from publisher.fleet import MetricSpec, StreamSpec
>>> stream = StreamSpec(0, "s", "d", "temp", MetricSpec(baseline=20, range=(0, 50)), 10.0, 0.0)
>>> spike = PlannedFault("spike", 100.0, 100.0, {"magnitude": 15.0}, "scheduled")
>>> faults = StreamFaults(stream, [spike], RandomFaults(), run_start=0.0, seed=1)
>>> [faults.apply(ts, 20.0, 20.0).value for ts in (90.0, 100.0, 110.0)]
[20.0, 35.0, 20.0]
>>> faults.completed[0].to_dict()["start"], faults.completed[0].params
('1970-01-01T00:01:40.000Z', {'magnitude': 15.0})
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from iotwatch.config import ConfigError
from iotwatch.timeparse import format_rfc3339
from publisher.fleet import (
    DEFAULT_DURATIONS_S,
    GARBAGE_MODES,
    MALFORMED_PAYLOADS,
    FleetSpec,
    RandomFaults,
    StreamSpec,
    matching,
)
from publisher.signals import finish, stream_rng, typical_scale

_DECIMALS = 6


@dataclass(frozen=True, slots=True)
class PlannedFault:
    """A fault to inject: window in epoch seconds, the parameters given in the config."""

    kind: str
    start: float
    end: float
    params: dict[str, Any]
    source: str  # "scheduled" or "random"


@dataclass(frozen=True, slots=True)
class FaultLabel:
    """Ground truth of one injected fault: one line of labels.jsonl, one truth message."""

    site: str
    device: str
    metric: str
    kind: str
    start: float
    end: float
    params: dict[str, Any]
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"site": self.site, "device": self.device, "metric": self.metric,
                "kind": self.kind, "start": format_rfc3339(self.start),
                "end": format_rfc3339(self.end), "params": self.params, "source": self.source}

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the sensor reports at one tick: a value, nothing (``None``), or a broken
    payload (``malformed`` names how it is broken)."""

    value: float | None
    malformed: str | None = None


@dataclass
class _Active:
    fault: PlannedFault
    params: dict[str, Any]
    first_ts: float | None = None
    last_ts: float | None = None


def plan_scheduled(fleet: FleetSpec, streams: list[StreamSpec],
                   run_start: float) -> dict[int, list[PlannedFault]]:
    """The scheduled faults of each stream (by stream index), in time order.

    Raises ConfigError when two scheduled faults overlap on one stream.
    """
    plans: dict[int, list[tuple[int, PlannedFault]]] = {}
    for number, fault in enumerate(fleet.faults.scheduled):
        start = run_start + fault.start_s
        planned = PlannedFault(fault.kind, start, start + fault.duration_s, dict(fault.params),
                               "scheduled")
        for stream in streams:
            if matching(fault, stream):
                plans.setdefault(stream.index, []).append((number, planned))
    errors = []
    result: dict[int, list[PlannedFault]] = {}
    for index, items in plans.items():
        items.sort(key=lambda item: (item[1].start, item[0]))
        for (first, a), (second, b) in zip(items, items[1:], strict=False):
            if b.start <= a.end:
                errors.append(f"faults.scheduled.{second}: overlaps faults.scheduled.{first} "
                              f"on {streams[index].name} (one fault at a time per stream)")
        result[index] = [planned for _, planned in items]
    if errors:
        raise ConfigError(errors)
    return result


class StreamFaults:
    """Applies the scheduled and random faults of one stream, tick by tick."""

    def __init__(self, stream: StreamSpec, scheduled: list[PlannedFault],
                 random: RandomFaults, run_start: float, seed: int,
                 completed: list[FaultLabel] | None = None) -> None:
        self.stream = stream
        self.random = random
        self.run_start = run_start
        # Where labels go as faults complete (a fleet shares one list between its streams).
        self.completed: list[FaultLabel] = [] if completed is None else completed
        fault_seed = seed if random.seed is None else random.seed
        self._arrivals = stream_rng(fault_seed, stream.name, "fault-arrivals")
        self._draws = stream_rng(fault_seed, stream.name, "fault-params")
        self._scheduled = list(scheduled)
        self._random_next: PlannedFault | None = None
        self._cursor = run_start + random.not_before_s
        self._pending: PlannedFault | None = None
        self._active: _Active | None = None

    def apply(self, ts: float, clean: float, last_output: float | None) -> Outcome:
        """The reported outcome at tick ``ts`` given the clean signal and the last value
        reported before it (what a stuck sensor keeps repeating)."""
        active = self._active
        if active is not None and ts > active.fault.end and active.first_ts is not None:
            self._complete()
            active = None
        if active is None:
            if self._pending is None:
                self._pending = self._take_next()
            if self._pending is not None and self._pending.start <= ts:
                held = finish(clean, self.stream.model) if last_output is None else last_output
                fault = self._pending
                self._pending = None
                active = self._active = _Active(fault, resolve_params(
                    fault, self.stream, held, self._draws))
        if active is None:
            return Outcome(finish(clean, self.stream.model))
        if active.first_ts is None:
            active.first_ts = ts
        active.last_ts = ts
        return self._inject(active, ts, clean)

    def finish(self) -> None:
        """The stream ended: label the fault in progress (up to its last affected tick)."""
        if self._active is not None and self._active.first_ts is not None:
            self._complete()
        self._active = None

    def _inject(self, active: _Active, ts: float, clean: float) -> Outcome:
        kind, params, model = active.fault.kind, active.params, self.stream.model
        if kind == "dropout":
            return Outcome(None)
        if kind == "stuck":
            return Outcome(params["value"])
        if kind == "garbage":
            if params["mode"] == "malformed":
                return Outcome(finish(clean, model), params["payload"])
            return Outcome(params["value"])
        if kind == "spike":
            return Outcome(finish(clean + params["magnitude"], model))
        if kind == "level_shift":
            return Outcome(finish(clean + params["delta"], model))
        if kind == "drift":
            window = active.fault.end - active.fault.start
            progress = 1.0 if window <= 0 else min(1.0, (ts - active.fault.start) / window)
            return Outcome(finish(clean + params["delta"] * progress, model))
        if kind == "noise_burst":
            return Outcome(finish(clean + params["std"] * float(self._draws.standard_normal()),
                                  model))
        raise AssertionError(f"unknown fault kind {kind!r}")

    def _complete(self) -> None:
        active = self._active
        assert active is not None and active.first_ts is not None and active.last_ts is not None
        stream = self.stream
        self.completed.append(FaultLabel(stream.site, stream.device, stream.metric,
                                         active.fault.kind, active.first_ts, active.last_ts,
                                         active.params, active.fault.source))
        self._cursor = max(self._cursor, active.fault.end, active.last_ts)
        self._active = None

    def _take_next(self) -> PlannedFault | None:
        """The next fault to start: the earlier of the next scheduled one and the next
        random arrival; a random one that would run into a scheduled one is dropped."""
        scheduled = self._scheduled[0] if self._scheduled else None
        candidate = self._random_candidate()
        if candidate is not None and (scheduled is None or candidate.end < scheduled.start):
            self._random_next = None
            self._cursor = candidate.end
            return candidate
        if scheduled is not None:
            self._scheduled.pop(0)
            self._random_next = None
            self._cursor = max(self._cursor, scheduled.end)
            return scheduled
        return None

    def _random_candidate(self) -> PlannedFault | None:
        rate = self.random.rate_per_stream_per_hour
        if not rate:
            return None
        if self._random_next is None:
            rng = self._arrivals
            start = self._cursor + float(rng.exponential(3600.0 / rate))
            kinds = self.random.kinds
            kind = kinds[int(rng.integers(len(kinds)))]
            low, high = self.random.durations_s.get(kind, DEFAULT_DURATIONS_S[kind])
            duration = float(rng.uniform(low, high)) if high > low else low
            self._random_next = PlannedFault(kind, start, start + duration, {}, "random")
        return self._random_next


def resolve_params(fault: PlannedFault, stream: StreamSpec, held: float,
                   rng: Any) -> dict[str, Any]:
    """The parameters a fault runs with: those configured, the rest drawn at the scale
    of the stream's own variation (``signals.typical_scale``). Sizes push away from the
    nearer end of the physical range so that clipping does not hide the fault.

    The same three draws are taken whatever is configured, so configuring one fault
    does not change the random parameters of the next.
    """
    model = stream.model
    low, high = model.range
    scale = typical_scale(model)
    u_sign, u_size, u_choice = (float(x) for x in rng.uniform(0.0, 1.0, 3))
    up = 1.0 if u_sign < 0.5 else -1.0
    given = fault.params

    def away_from_limit(size: float) -> float:
        # From the baseline: keep the drawn direction if the fault fits the range there,
        # else the other one; if neither fits, the roomier side, shrunk to fit.
        room = {1.0: high - model.baseline, -1.0: model.baseline - low}
        direction = up if size <= room[up] else -up
        if size > room[direction]:
            direction = max(room, key=lambda d: room[d])
            size = 0.9 * max(room[direction], 0.0)
        return round(direction * size, _DECIMALS)

    params: dict[str, Any] = {}
    kind = fault.kind
    if kind == "spike":
        params["magnitude"] = given.get("magnitude", away_from_limit((6 + 4 * u_size) * scale))
    elif kind in ("level_shift", "drift"):
        size = (3 + 3 * u_size) if kind == "level_shift" else (4 + 4 * u_size)
        params["delta"] = given.get("delta", away_from_limit(size * scale))
    elif kind == "noise_burst":
        params["std"] = given.get("std", round((3 + 3 * u_size) * scale, _DECIMALS))
    elif kind == "stuck":
        params["value"] = given.get("value", held)
    elif kind == "garbage":
        mode = given.get("mode", GARBAGE_MODES[min(1, int(u_choice * 2))])
        params["mode"] = mode
        if mode == "malformed":
            params["payload"] = given.get(
                "payload", MALFORMED_PAYLOADS[min(len(MALFORMED_PAYLOADS) - 1,
                                                  int(u_size * len(MALFORMED_PAYLOADS)))])
        else:
            width = (0.5 + 1.5 * u_size) * (high - low)
            params["value"] = given.get(
                "value", round(high + width if up > 0 else low - width, _DECIMALS))
    return {k: float(v) if isinstance(v, int) else v for k, v in params.items()}
