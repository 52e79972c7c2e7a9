"""Clean sensor signals: sampling times and values of one stream, before any fault.

value(t) = baseline + device offset + daily cycle(t) + drift(t) + noise, then
quantised to the sensor's resolution and clipped to its physical range (``finish``).
Every random draw comes from a generator seeded by the run's seed and the stream's
name, so a stream's signal does not depend on which other streams run beside it.

>>> from publisher.fleet import MetricSpec
>>> model = MetricSpec(baseline=20.0, noise=0.5, resolution=0.1, range=(-40, 85))
>>> def readings(seed):
...     signal = Signal(model, seed, key="site/dev/temperature")
...     return [finish(signal.value(1768905000.0 + 10 * k), model) for k in range(3)]
>>> readings(1) == readings(1), readings(1) == readings(2)
(True, False)
>>> all(18.0 < v < 22.0 for v in readings(1))
True
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from publisher.fleet import MetricSpec

_BLOCK = 256
_SECONDS_PER_DAY = 86_400.0


def stream_rng(seed: int, key: str, purpose: str) -> np.random.Generator:
    """A generator owned by one (stream, purpose): the same inputs, the same draws.

    >>> a = stream_rng(7, "plant/boiler-1/temp", "noise").normal()
    >>> a == stream_rng(7, "plant/boiler-1/temp", "noise").normal()
    True
    >>> a == stream_rng(8, "plant/boiler-1/temp", "noise").normal()
    False
    """
    digest = hashlib.sha256(f"{key}\x1f{purpose}".encode()).digest()
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng([seed & 0xFFFFFFFF, seed >> 32 & 0xFFFFFFFF, *words])


class Draws:
    """Standard normal (or uniform) draws taken from a generator in blocks (fast, same order)."""

    def __init__(self, rng: np.random.Generator, kind: str = "normal") -> None:
        self._rng = rng
        self._kind = kind
        self._block: list[float] = []
        self._next = 0

    def take(self) -> float:
        if self._next >= len(self._block):
            if self._kind == "normal":
                self._block = self._rng.standard_normal(_BLOCK).tolist()
            else:
                self._block = self._rng.uniform(-1.0, 1.0, _BLOCK).tolist()
            self._next = 0
        value = self._block[self._next]
        self._next += 1
        return value


class Ticks:
    """Sampling times: ``start + k * interval`` moved by up to +/- ``jitter`` seconds.

    The jitter draws are keyed by the device and interval, not the metric, so metrics of
    one device that share an interval are sampled at the same instants (and can travel
    in one per-device message).

    >>> ticks = Ticks(1768905000.0, 10.0, 0.0, seed=1, key="s/d")
    >>> [ticks.at(k) for k in range(3)]
    [1768905000.0, 1768905010.0, 1768905020.0]
    """

    def __init__(self, start: float, interval_s: float, jitter_s: float, seed: int,
                 key: str) -> None:
        self.start = start
        self.interval_s = interval_s
        self.jitter_s = jitter_s
        self._draws = Draws(stream_rng(seed, key, f"jitter@{interval_s!r}"), "uniform")
        self._taken = 0

    def at(self, k: int) -> float:
        """The time of tick ``k``; ticks must be asked for in order (0, 1, 2, ...)."""
        if k != self._taken:
            raise ValueError(f"ticks are drawn in order: expected tick {self._taken}, got {k}")
        self._taken += 1
        nominal = self.start + k * self.interval_s
        if self.jitter_s:
            # Never before the start: the first reading is at or after it.
            nominal = max(self.start, nominal + self._draws.take() * self.jitter_s)
        return round(nominal * 1000.0) / 1000.0  # what the wire carries: milliseconds


class Signal:
    """The clean value of one stream at increasing times."""

    def __init__(self, model: MetricSpec, seed: int, key: str) -> None:
        self.model = model
        self.offset = float(stream_rng(seed, key, "offset").standard_normal()) * model.spread
        self._noise = Draws(stream_rng(seed, key, "noise"))
        self._drift_draws = Draws(stream_rng(seed, key, "drift"))
        # Start the walk from its long-run distribution, not from zero.
        self._drift = self._drift_draws.take() * model.drift.std
        self._last_ts: float | None = None
        self._omega = 2 * math.pi / _SECONDS_PER_DAY
        self._peak_s = model.daily.peak_hour * 3600.0

    def value(self, ts: float) -> float:
        """The signal at ``ts`` (epoch seconds, not before the previous call's)."""
        model = self.model
        if model.drift.std and self._last_ts is not None:
            # Ornstein-Uhlenbeck step: exact for any gap, keeps the long-run std.
            keep = math.exp(-(ts - self._last_ts) / (model.drift.tau_h * 3600.0))
            self._drift = (self._drift * keep
                           + math.sqrt(1.0 - keep * keep) * model.drift.std
                           * self._drift_draws.take())
        self._last_ts = ts
        value = model.baseline + self.offset + self._drift
        if model.daily.amplitude:
            value += model.daily.amplitude * math.cos(self._omega * (ts - self._peak_s))
        if model.noise:
            value += model.noise * self._noise.take()
        return value


def quantise(value: float, model: MetricSpec) -> float:
    """Round to the sensor's resolution (no float dust: 0.1 steps print as 21.4).

    >>> quantise(21.4321, MetricSpec(baseline=0, resolution=0.1, range=(0, 50)))
    21.4
    """
    if model.resolution:
        value = round(value / model.resolution) * model.resolution
    return round(value, 9)


def finish(value: float, model: MetricSpec) -> float:
    """What the sensor reports: quantised, and clipped to its physical range.

    >>> finish(130.04, MetricSpec(baseline=0, resolution=0.1, range=(0, 120)))
    120.0
    """
    low, high = model.range
    return quantise(min(max(value, low), high), model)


def typical_scale(model: MetricSpec) -> float:
    """How much the metric moves on its own from reading to reading and hour to hour: the
    yardstick of random fault sizes. The daily cycle counts for little (it is predictable).

    >>> typical_scale(MetricSpec(baseline=0, noise=3.0, range=(0, 100)))
    3.0
    """
    low, high = model.range
    spread = math.sqrt(model.noise ** 2 + model.drift.std ** 2
                       + (model.daily.amplitude / 4) ** 2)
    return max(spread, model.resolution or 0.0, 1e-3 * (high - low))
