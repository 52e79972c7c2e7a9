"""Bounds on the streams one detector holds: how many, how many new a minute, and idle
streams moved to disk (``limits.max_streams``, ``max_new_streams_per_minute``,
``evict_idle_s``).

A misbehaving gateway (a counter in a topic level, a random device id) would otherwise
create streams without end, each costing ~10-40 KB of detector state. ``StreamGate``
decides, before the engine sees a message, whether the streams it names may exist:

- a stream the engine holds always goes on;
- a stream evicted earlier is loaded back from the ``StreamStore`` (its exact state);
- a new stream needs one of ``max_new_streams_per_minute`` (a token bucket) and room
  under ``max_streams``; when the table is full, streams idle for ``evict_idle_s`` are
  saved to disk and dropped (oldest first; never one whose alert is open);
- otherwise the message is rejected as ``stream_limit`` and dead-lettered.

Idle streams are also evicted by a sweep at most once a minute. Time is each message's
arrival time: the gate keeps no clock of its own.

>>> import tempfile
>>> from detector.engine import Engine, EngineSettings
>>> from iotwatch.contracts import Reading
>>> gate = StreamGate(StreamLimits(max_streams=2), StreamStore(Path(tempfile.mkdtemp())))
>>> engine = Engine(EngineSettings(enabled=["zscore"]))
>>> def send(device, now):
...     reading = Reading("s", device, "t", now, 1.0)
...     refused = gate.admit(engine, [reading], now)
...     if refused is None:
...         engine.process("s", device, "t", now, 1.0)
...     return refused
>>> send("a", 0.0), send("b", 1.0)
(None, None)
>>> print(send("c", 2.0).detail)
2 streams held (limits.max_streams) and none idle for 3600 s: new stream s/c/t not created
>>> send("c", 3602.0), "s/a/t" in engine, "s/a/t" in gate.store     # a was idle: evicted
(None, False, True)
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from detector.engine import DEVICE_METRIC, Engine
from detector.engine.snapshot import SnapshotError
from detector.metrics import Metrics
from detector.streamstore import StreamStore
from iotwatch.contracts import Reading, Reason, Rejected

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 60.0
# Evictions per sweep at most: each is a small fsync'd file on the processing thread.
MAX_EVICTIONS = 1000
WARN_FOR_S = 300.0


@dataclass(frozen=True, slots=True)
class StreamLimits:
    max_streams: int = 20_000
    max_new_per_minute: int = 10_000
    evict_idle_s: float = 3600.0


class StreamGate:
    """Admits, restores and evicts streams; every call under the engine's lock."""

    def __init__(self, limits: StreamLimits, store: StreamStore,
                 metrics: Metrics | None = None) -> None:
        self.limits = limits
        self.store = store
        self.metrics = metrics or Metrics()
        self.metrics.stream_limit.set(limits.max_streams)
        self.metrics.streams_on_disk.set(len(store))
        # key -> arrival of its last message, in order of last use (oldest first).
        self._last_seen: OrderedDict[str, float] = OrderedDict()
        self._tokens = float(limits.max_new_per_minute)
        self._tokens_at: float | None = None
        self._next_sweep = 0.0
        # Streams loaded from the store (or held twice) since the last checkpoint: their
        # files go once a checkpoint holds them.
        self._restored: set[str] = set()
        self.refused = 0
        self._last_refusal: tuple[float, str] | None = None

    def adopt(self, engine: Engine, now: float) -> None:
        """Take on the streams a restored engine holds, as if just seen."""
        for key in engine.stream_keys():
            self._last_seen[key] = now
            if key in self.store:  # evicted after that checkpoint, then a crash
                self._restored.add(key)

    def admit(self, engine: Engine, readings: list[Reading], now: float) -> Rejected | None:
        """None when the streams of one message may go on (loaded back if evicted)."""
        first = readings[0]
        keys = [r.stream for r in readings]
        if len(readings) > 1 and engine.settings.detectors.multivariate.enabled:
            keys.append(f"{first.site}/{first.device}/{DEVICE_METRIC}")
        missing = [key for key in keys if key not in engine]
        if missing:
            refused = self._make_room(engine, missing, now)
            if refused is not None:
                return refused
        seen = self._last_seen
        for key in keys:
            seen[key] = now
            seen.move_to_end(key)
        return None

    def _make_room(self, engine: Engine, missing: list[str], now: float) -> Rejected | None:
        limits = self.limits
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_INTERVAL_S
            self.evict_idle(engine, now)
        returning = [key for key in missing if key in self.store]
        fresh = len(missing) - len(returning)
        self._refill(now)
        if fresh > self._tokens:
            return self._refuse(now, f"more than {limits.max_new_per_minute} new streams a "
                                f"minute (limits.max_new_streams_per_minute): new stream "
                                f"{missing[0]} not created")
        if len(engine) + len(missing) > limits.max_streams:
            self.evict_idle(engine, now)
            if len(engine) + len(missing) > limits.max_streams:
                return self._refuse(now, f"{limits.max_streams} streams held "
                                    f"(limits.max_streams) and none idle for "
                                    f"{limits.evict_idle_s:g} s: new stream {missing[0]} "
                                    "not created")
        self._tokens -= fresh
        for key in returning:
            self._restore(engine, key)
        return None

    def _refill(self, now: float) -> None:
        rate = self.limits.max_new_per_minute
        if self._tokens_at is not None:
            self._tokens = min(float(rate),
                               self._tokens + max(0.0, now - self._tokens_at) * rate / 60.0)
        self._tokens_at = now

    def _refuse(self, now: float, detail: str) -> Rejected:
        self.refused += 1
        self._last_refusal = (now, detail)
        return Rejected(Reason.STREAM_LIMIT, detail)

    def _restore(self, engine: Engine, key: str) -> None:
        try:
            data = self.store.load(key)
            if data is not None:
                engine.import_stream(data)
        except (OSError, SnapshotError, KeyError, ValueError) as exc:
            log.error("evicted stream %s cannot be loaded (%s); it starts learning afresh",
                      key, exc)
            self.store.delete(key)
            return
        self._restored.add(key)
        self.metrics.streams_restored.inc()
        self.metrics.streams_on_disk.set(len(self.store))

    def evict_idle(self, engine: Engine, now: float) -> int:
        """Save streams idle for ``evict_idle_s`` to the store and drop them; how many."""
        cutoff = now - self.limits.evict_idle_s
        seen = self._last_seen
        idle = []
        for key, last in seen.items():
            if last > cutoff or len(idle) >= MAX_EVICTIONS:
                break
            idle.append(key)
        evicted = 0
        for key in idle:
            if key not in engine:
                del seen[key]
                continue
            if engine.alert_state(key) != "normal":  # its open alert needs it resident
                seen[key] = now
                seen.move_to_end(key)
                continue
            try:
                self.store.save(key, engine.export_stream(key))
            except OSError as exc:
                log.error("cannot save idle stream %s to %s (%s); keeping it in memory",
                          key, self.store.directory, exc)
                break
            engine.drop_stream(key)
            del seen[key]
            self._restored.discard(key)
            evicted += 1
        if evicted:
            self.metrics.streams_evicted.inc(evicted)
            self.metrics.streams_on_disk.set(len(self.store))
            log.info("%d stream(s) idle for %g s moved to %s", evicted,
                     self.limits.evict_idle_s, self.store.directory)
        return evicted

    def checkpointed(self, engine: Engine, keys: set[str] | None = None) -> None:
        """A checkpoint now holds ``keys`` (default: every resident stream): the evicted
        copies of those can go."""
        done = [key for key in self._restored
                if key in engine and (keys is None or key in keys)]
        for key in done:
            self.store.delete(key)
        self._restored.difference_update(done if keys is not None else list(self._restored))
        self.metrics.streams_on_disk.set(len(self.store))

    def warning(self, now: float) -> str | None:
        """For ``/health``: streams were refused within the last five minutes."""
        if self._last_refusal is None or now - self._last_refusal[0] > WARN_FOR_S:
            return None
        at, detail = self._last_refusal
        return (f"stream limit: {self.refused} message(s) of new streams dead-lettered as "
                f"stream_limit, the last {max(0.0, now - at):.0f} s ago ({detail})")


def store_beside(checkpoint: Path) -> StreamStore:
    """The evicted-stream store next to the checkpoint file (the same volume)."""
    return StreamStore(Path(checkpoint).with_name(Path(checkpoint).stem + "-streams"))
