"""The detection engine: per-stream detectors, calibration and alert decisions, no I/O.

For each reading the engine scores the value with every enabled detector of its stream
(before learning it), turns the raw scores into one calibrated score in [0, 1], learns
the value, and advances the stream's alert state machine. Streams are created on first
sight from the settings resolved for them (``streams`` rules). The same code runs in the
detector service and in offline evaluation.

>>> engine = Engine(EngineSettings(enabled=["zscore"]))
>>> outcomes = [engine.process("plant", "boiler", "temp", float(t), 20.0 + (t % 7) * 0.1)
...             for t in range(300)]
>>> outcomes[-1].anomaly
False
>>> spike = engine.process("plant", "boiler", "temp", 300.0, 35.0)
>>> spike.anomaly, spike.event.state, spike.event.severity
(True, 'firing', 'critical')
>>> restored = Engine.restore(engine.settings, engine.snapshot())
>>> restored.process("plant", "boiler", "temp", 301.0, 20.3) == engine.process(
...     "plant", "boiler", "temp", 301.0, 20.3)
True
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from detector.engine import registry, snapshot
from detector.engine.calibration import Calibrator
from detector.engine.decision import AlertEvent, AlertMachine
from detector.engine.protocol import VALUE_LIMIT
from detector.engine.settings import DecisionSettings, EngineSettings
from detector.engine.streams import matches
from iotwatch.contracts import alert_fingerprint

DEVICE_METRIC = "_device"
_DECISION_OVERRIDES = ("threshold", "pending_readings", "pending_seconds", "resolve_readings",
                       "resolve_threshold", "critical_score")

__all__ = ["DEVICE_METRIC", "AlertEvent", "Engine", "EngineSettings", "Outcome", "StreamConfig",
           "resolve_stream"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the engine concluded about one reading."""

    scores: dict[str, float]
    score: float
    threshold: float
    anomaly: bool
    event: AlertEvent | None


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """The settings that apply to one stream once the ``streams`` rules are applied."""

    enabled: tuple[str, ...]
    value_range: tuple[float, float] | None
    decision: DecisionSettings


def resolve_stream(settings: EngineSettings, stream: str,
                   base: DecisionSettings | None = None) -> StreamConfig:
    """Apply the matching ``streams`` rules, in order, to the defaults.

    >>> from detector.engine.settings import StreamRule
    >>> settings = EngineSettings(streams=[
    ...     StreamRule(match="+/+/temperature", range=(-40, 125)),
    ...     StreamRule(match="plant-1/#", threshold=0.8)])
    >>> config = resolve_stream(settings, "plant-1/boiler/temperature")
    >>> config.value_range, config.decision.threshold
    ((-40.0, 125.0), 0.8)
    """
    enabled = tuple(settings.enabled)
    value_range = None
    overrides: dict[str, Any] = {}
    for rule in settings.streams:
        if not matches(rule.match, stream):
            continue
        if rule.enabled is not None:
            enabled = tuple(rule.enabled)
        if rule.range is not None:
            value_range = rule.range
        for name in _DECISION_OVERRIDES:
            value = getattr(rule, name)
            if value is not None:
                overrides[name] = value
    base = settings.decision if base is None else base
    decision = base.model_copy(update=overrides) if overrides else base
    if decision.resolve_threshold is not None and decision.resolve_threshold > decision.threshold:
        decision = decision.model_copy(update={"resolve_threshold": decision.threshold})
    return StreamConfig(enabled, value_range, decision)


class _Stream:
    """Everything the engine keeps for one stream (or one device's metric vector)."""

    __slots__ = ("site", "device", "metric", "names", "detectors", "calibrator", "machine",
                 "config_id", "metrics", "count", "last_ts", "last_value", "last_score",
                 "last_anomaly", "last_scores", "timed", "can_freeze")

    def __init__(self, site: str, device: str, metric: str, names: tuple[str, ...],
                 detectors: list[Any], calibrator: Calibrator, machine: AlertMachine,
                 config_id: str, metrics: tuple[str, ...] = ()) -> None:
        self.site, self.device, self.metric = site, device, metric
        self.names = names
        self.detectors = detectors
        self.calibrator = calibrator
        self.machine = machine
        self.config_id = config_id
        self.metrics = metrics
        self.count = 0
        self.last_ts = 0.0
        self.last_value = 0.0
        self.last_score = 0.0
        self.last_anomaly = False
        self.last_scores: dict[str, float] = {}
        # Per detector: takes (ts, value) instead of the value; None when none does.
        timed = tuple(bool(getattr(d, "timed", False)) for d in detectors)
        self.timed = timed if any(timed) else None
        # Whether some detector can keep a fitted model (``fitted``): otherwise none is
        # ever frozen, and the per-reading list of False is not built.
        self.can_freeze = any(hasattr(type(d), "fitted") or hasattr(d, "fitted")
                              for d in detectors)


def _warmup_of(detector: Any) -> int:
    """Readings a detector learns before it is ready (its own count, or its first window)."""
    return int(getattr(detector, "warmup", 0) or getattr(detector, "window_size", 0) or 1)


class Engine:
    """Per-stream online anomaly detection and alert decisions (pure: no I/O, no clock)."""

    def __init__(self, settings: EngineSettings | None = None) -> None:
        self.settings = settings if settings is not None else EngineSettings()
        self._streams: dict[str, _Stream] = {}
        # Streams whose saved detector state did not fit the current settings at restore.
        self.reset_streams: list[str] = []

    # -- per-reading ------------------------------------------------------------------------

    def process(self, site: str, device: str, metric: str, ts: float, value: float) -> Outcome:
        """Score ``value`` (before learning it), learn it, decide; return the outcome."""
        key = f"{site}/{device}/{metric}"
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = self._new_stream(site, device, metric)
        return self._run(stream, ts, value, value, learn=True)

    def peek(self, site: str, device: str, metric: str, ts: float, value: float) -> Outcome:
        """What ``process`` would return, without changing any state."""
        key = f"{site}/{device}/{metric}"
        stream = self._streams.get(key) or self._new_stream(site, device, metric)
        return self._run(stream, ts, value, value, learn=False)

    def warmup_left(self, site: str, device: str, metric: str) -> tuple[bool, int, int]:
        """Whether the stream is known, the readings it learned, and about how many more it
        needs before its score can leave 0 (0: it scores now).

        >>> engine = Engine(EngineSettings(enabled=["zscore"]))
        >>> engine.warmup_left("s", "d", "t")
        (False, 0, 130)
        >>> for t in range(40):
        ...     _ = engine.process("s", "d", "t", float(t), 20.0 + t % 3)
        >>> engine.warmup_left("s", "d", "t")
        (True, 40, 90)
        """
        key = f"{site}/{device}/{metric}"
        stream = self._streams.get(key)
        known = stream is not None
        if stream is None:
            stream = self._new_stream(site, device, metric)
        calibrator = stream.calibrator
        needed = []
        for index, detector in enumerate(stream.detectors):
            own = 0 if detector.ready else max(1, _warmup_of(detector) - stream.count)
            calibration = 0 if calibrator.surprises[index] else max(
                0, calibrator.warmup - calibrator.histories[index].n)
            needed.append(own + calibration)
        return known, stream.count, min(needed, default=0)

    def process_device(self, site: str, device: str, ts: float,
                       values: dict[str, float]) -> Outcome | None:
        """Score a device's metrics together (metric ``_device`` in events and summaries).

        Returns None when the multivariate detector is disabled or fewer than two metrics
        came in the message.
        """
        if not self.settings.detectors.multivariate.enabled or len(values) < 2:
            return None
        key = f"{site}/{device}/{DEVICE_METRIC}"
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = self._new_device(site, device, tuple(sorted(values)))
        value = max(values.values()) if values else 0.0
        if not all(-VALUE_LIMIT <= v <= VALUE_LIMIT for v in values.values()):
            values = {k: min(max(v, -VALUE_LIMIT), VALUE_LIMIT) for k, v in values.items()}
        return self._run(stream, ts, values, value, learn=True)

    def _run(self, stream: _Stream, ts: float, x: Any, value: float, learn: bool) -> Outcome:
        if not isinstance(x, dict) and not -VALUE_LIMIT <= x <= VALUE_LIMIT and x == x:
            # Detectors see |x| <= 1e100: their squares and sums stay finite, and such a
            # value is as anomalous as any larger one. The outcome keeps the real value.
            x = VALUE_LIMIT if x > 0 else -VALUE_LIMIT
        detectors = stream.detectors
        timed = stream.timed
        if timed:  # detectors that follow the clock (seasonal) take (ts, value)
            inputs = [(ts, x) if t else x for t in timed]
            raws = [detector.score_one(i) for detector, i in zip(detectors, inputs, strict=True)]
        else:
            raws = [detector.score_one(x) for detector in detectors]
        scores = dict(zip(stream.names, raws, strict=True))
        machine = stream.machine
        if learn:
            score = stream.calibrator.update(
                raws, [detector.ready for detector in detectors],
                [getattr(detector, "fitted", False) for detector in detectors]
                if stream.can_freeze else None)
            if timed:
                for detector, i in zip(detectors, inputs, strict=True):
                    detector.learn_one(i)
            else:
                for detector in detectors:
                    detector.learn_one(x)
        else:
            score = stream.calibrator.score(raws)
            machine = machine.copy()
        threshold = machine.settings.threshold
        calibrated = score
        score = machine.report(calibrated)
        anomaly = score >= threshold
        event = machine.step(ts, value, calibrated, scores)
        if learn:
            stream.count += 1
            stream.last_ts = ts
            stream.last_value = value
            stream.last_score = score
            stream.last_anomaly = anomaly
            stream.last_scores = scores
        return Outcome(scores, score, threshold, anomaly, event)

    # -- streams ----------------------------------------------------------------------------

    def _new_stream(self, site: str, device: str, metric: str) -> _Stream:
        settings = self.settings
        config = resolve_stream(settings, f"{site}/{device}/{metric}")
        context = registry.StreamContext(value_range=config.value_range)
        detectors = [registry.create(name, settings, context) for name in config.enabled]
        return _Stream(site, device, metric, config.enabled, detectors,
                       self._calibrator(detectors), self._machine(site, device, metric,
                                                                  config.decision),
                       self._config_id(config.enabled, config.value_range))

    def _new_device(self, site: str, device: str, metrics: tuple[str, ...]) -> _Stream:
        settings = self.settings
        section = settings.detectors.multivariate
        device_decision: dict[str, Any] = {
            name: getattr(section, name) for name in ("threshold", "resolve_readings")
            if getattr(section, name) is not None}
        # A device's "value" is the largest of its metrics: no level to return to.
        device_decision["resolve_return"] = None
        base = settings.decision.model_copy(update=device_decision)
        config = resolve_stream(settings, f"{site}/{device}/{DEVICE_METRIC}", base)
        ranges = {}
        for metric in metrics:
            value_range = resolve_stream(settings, f"{site}/{device}/{metric}").value_range
            if value_range is not None:
                ranges[metric] = value_range
        # A rule for site/device/_device may enable device detectors (trained device models).
        names = tuple(n for n in config.enabled if registry.kind_of(n) == "device") or (
            settings.detectors.multivariate.method,)
        context = registry.StreamContext(metric_ranges=ranges)
        detectors = [registry.create(name, settings, context) for name in names]
        return _Stream(site, device, DEVICE_METRIC, names, detectors,
                       self._calibrator(detectors),
                       self._machine(site, device, DEVICE_METRIC, config.decision),
                       self._config_id(names, tuple(sorted(ranges.items()))), metrics)

    def _calibrator(self, detectors: list[Any]) -> Calibrator:
        surprises = tuple(bool(getattr(d, "surprise_score", False)) for d in detectors)
        return Calibrator(len(detectors), **self.settings.calibration.model_dump(),
                          surprises=surprises)

    @staticmethod
    def _machine(site: str, device: str, metric: str, decision: DecisionSettings) -> AlertMachine:
        return AlertMachine(decision, alert_fingerprint(site, device, metric, decision.rule))

    def _config_id(self, names: tuple[str, ...], extra: Any) -> str:
        settings = self.settings
        relevant = {"names": names, "extra": extra, "seed": settings.seed,
                    "detectors": settings.detectors.model_dump(mode="json"),
                    "calibration": settings.calibration.model_dump(mode="json")}
        return hashlib.sha256(orjson.dumps(relevant, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]

    # -- inspection -------------------------------------------------------------------------

    def stream_summaries(self) -> dict[str, dict[str, Any]]:
        """``site/device/metric`` -> what the engine knows about that stream now."""
        return {key: {
            "site": s.site, "device": s.device, "metric": s.metric, "count": s.count,
            "ts": s.last_ts, "value": s.last_value, "score": s.last_score,
            "anomaly": s.last_anomaly, "scores": dict(s.last_scores),
            "threshold": s.machine.settings.threshold, "alert_state": s.machine.state,
            "episodes": s.machine.episodes, "fingerprint": s.machine.fingerprint,
            "detectors": list(s.names),
        } for key, s in self._streams.items()}

    def __len__(self) -> int:
        return len(self._streams)

    # -- checkpoints ------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """Versioned bytes holding the complete state of every stream."""
        streams = [_stream_state(s) for s in self._streams.values()]
        return snapshot.encode({"engine": snapshot.VERSION, "streams": streams})

    @classmethod
    def restore(cls, settings: EngineSettings, data: bytes) -> Engine:
        """An engine that continues exactly where the snapshotted one stopped.

        A stream whose detector settings changed since the snapshot keeps its alert state
        but starts learning afresh; its key is listed in ``reset_streams``.
        """
        return cls.from_streams(settings, snapshot.decode(data)["streams"])

    @classmethod
    def from_streams(cls, settings: EngineSettings, streams: Any) -> Engine:
        """``restore`` from the streams' ``stream_state`` dicts (in any grouping)."""
        engine = cls(settings)
        for saved in streams:
            engine._load_stream(saved)
        return engine

    def stream_state(self, key: str) -> dict[str, Any] | None:
        """One stream's part of ``snapshot`` (plain data; None for an unknown key), so a
        checkpoint can be written a few streams at a time."""
        stream = self._streams.get(key)
        return None if stream is None else _stream_state(stream)

    # -- one stream at a time (the service evicts idle streams to disk) ---------------------

    def __contains__(self, key: object) -> bool:
        return key in self._streams

    def export_stream(self, key: str) -> bytes:
        """The complete state of stream ``key`` (``site/device/metric``), as ``snapshot``
        writes it; ``import_stream`` brings it back exactly.

        >>> engine = Engine(EngineSettings(enabled=["zscore"]))
        >>> _ = [engine.process("s", "d", "t", float(t), t % 5) for t in range(50)]
        >>> saved = engine.export_stream("s/d/t"); engine.drop_stream("s/d/t")
        >>> "s/d/t" in engine, engine.import_stream(saved), "s/d/t" in engine
        (False, 's/d/t', True)
        """
        return snapshot.encode({"engine": snapshot.VERSION,
                                "streams": [_stream_state(self._streams[key])]})

    def import_stream(self, data: bytes) -> str:
        """Load one stream ``export_stream`` wrote (replacing any of that key); its key."""
        [saved] = snapshot.decode(data)["streams"]
        return self._load_stream(saved)

    def drop_stream(self, key: str) -> None:
        """Forget stream ``key`` (nothing if unknown)."""
        self._streams.pop(key, None)

    def stream_keys(self) -> list[str]:
        return list(self._streams)

    def alert_state(self, key: str) -> str:
        """``normal``, ``pending``, ``firing`` or ``suppressed``: stream ``key``'s alert state."""
        return self._streams[key].machine.state

    def _load_stream(self, saved: dict[str, Any]) -> str:
        site, device, metric = saved["site"], saved["device"], saved["metric"]
        if metric == DEVICE_METRIC:
            stream = self._new_device(site, device, tuple(saved["metrics"]))
        else:
            stream = self._new_stream(site, device, metric)
        key = f"{site}/{device}/{metric}"
        if stream.config_id == saved["config_id"]:
            for detector, state in zip(stream.detectors, saved["detectors"], strict=True):
                detector.load_state(state)
            stream.calibrator.load_state(saved["calibration"])
        else:
            self.reset_streams.append(key)
        stream.machine.load_state(saved["decision"])
        stream.count = int(saved["count"])
        stream.last_ts = float(saved["last_ts"])
        stream.last_value = float(saved["last_value"])
        stream.last_score = float(saved["last_score"])
        stream.last_anomaly = bool(saved["last_anomaly"])
        stream.last_scores = {k: float(v) for k, v in saved["last_scores"].items()}
        self._streams[key] = stream
        return key


def _stream_state(s: _Stream) -> dict[str, Any]:
    return {
        "site": s.site, "device": s.device, "metric": s.metric, "metrics": list(s.metrics),
        "config_id": s.config_id, "count": s.count, "last_ts": s.last_ts,
        "last_value": s.last_value, "last_score": s.last_score,
        "last_anomaly": s.last_anomaly, "last_scores": s.last_scores,
        "detectors": [d.state() for d in s.detectors],
        "calibration": s.calibrator.state(), "decision": s.machine.state_dict(),
    }
