"""One MQTT message in; its points, alerts and rejection out. No I/O, no clock.

The handler owns the engine: every use of it (learning here, ``/streams`` and
``/predict`` from HTTP threads, snapshots) goes through ``lock``. An optional ``gate``
(``detector.streamlimit``, the service's) decides first whether a message's streams may
exist; it is the one part that touches disk (evicted streams).

>>> from detector.engine import Engine, EngineSettings
>>> from iotwatch.parse import ReadingParser
>>> from iotwatch.topics import Topics
>>> handler = MessageHandler(Engine(EngineSettings(enabled=["zscore"])),
...                          ReadingParser(Topics("iotwatch")))
>>> done = handler.handle("iotwatch/readings/s/d/temp", b'{"ts": 1768905000, "value": 21.5}',
...                       received_at=1768905001.0)
>>> done.readings, done.lines[0].split(" ")[0], done.rejected
(1, 'readings,site=s,device=d,metric=temp', None)
>>> handler.handle("iotwatch/readings/s/d/temp", b'{"value": "hot"}', 0.0).rejected.reason
<Reason.NON_NUMERIC: 'non_numeric'>
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from detector.engine import DEVICE_METRIC, AlertEvent, Engine, Outcome, snapshot
from detector.forecast.streams import StreamForecasts
from detector.lineprotocol import (
    SeriesKeys,
    alert_line,
    float_field,
    reading_line,
    timestamp,
)
from detector.sequence import SequenceTracker
from detector.streamlimit import StreamGate
from detector.summaries.streams import StreamSummaries
from iotwatch.contracts import Alert, Reading, Rejected
from iotwatch.parse import ReadingParser


@dataclass(slots=True)
class Handled:
    """What one message (or a batch of them, see ``handle_into``) produced."""

    lines: list[str] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    rejected: Rejected | None = None
    readings: int = 0
    reading_ts: float | None = None
    engine_errors: list[str] = field(default_factory=list)


class MessageHandler:
    """Parses, scores and learns one message at a time; builds its points and alerts."""

    def __init__(self, engine: Engine, parser: ReadingParser, *, measurement: str = "readings",
                 alert_measurement: str = "alerts", device_points: bool = True,
                 precision: str = "us", sequences: SequenceTracker | None = None,
                 gate: StreamGate | None = None, forecasts: StreamForecasts | None = None,
                 summaries: StreamSummaries | None = None) -> None:
        self.engine = engine
        self.sequences = sequences
        self.parser = parser
        self.gate = gate
        self.lock = threading.Lock()
        self._series = SeriesKeys(measurement)
        self._alert_measurement = alert_measurement
        self._device_points = device_points
        self.precision = precision  # of every timestamp written (influxdb.precision)
        self.forecasts = forecasts if forecasts is not None and forecasts.active else None
        self.rollups = summaries if summaries is not None and summaries.active else None
        # Streams whose state changed since the checkpoint last took them (ordered, no dups).
        self._dirty: dict[str, None] = {}

    def handle(self, topic: str, payload: bytes, received_at: float) -> Handled:
        """One message on its own (takes ``lock``)."""
        done = Handled()
        with self.lock:
            done.rejected = self.handle_into(done, topic, payload, received_at)
        return done

    def handle_into(self, done: Handled, topic: str, payload: bytes,
                    received_at: float) -> Rejected | None:
        """Add one message's lines, alerts and engine errors to ``done``; the caller holds
        ``lock``. Returns the rejection instead when the message is not a reading.

        A batch of messages goes through one ``Handled``: the same lines, in the same
        order, as handling them one at a time, without an object per message.
        """
        try:
            readings = self.parser.parse(topic, payload, received_at)
        except Rejected as rejected:
            return rejected
        if self.gate is not None:
            refused = self.gate.admit(self.engine, readings, received_at)
            if refused is not None:
                return refused
        done.readings += len(readings)
        done.reading_ts = readings[0].ts
        lines = done.lines
        sequences = self.sequences
        process = self.engine.process
        dirty = self._dirty
        for reading in readings:
            stream = reading.stream
            dirty[stream] = None
            if sequences is not None and reading.seq is not None:
                sequences.observe(stream, reading.seq)
            try:
                outcome = process(reading.site, reading.device, reading.metric,
                                  reading.ts, reading.value)
            except Exception as exc:  # a detector bug must not lose the reading
                done.engine_errors.append(f"{reading.stream}: {type(exc).__name__}: {exc}")
                lines.append(self._value_only(reading))
                continue
            lines.append(self._line(reading.site, reading.device, reading.metric,
                                    reading.ts, reading.value, outcome))
            if outcome.event is not None:
                self._alert(done, reading.site, reading.device, reading.metric,
                            outcome.event)
            if self.forecasts is not None:
                self._forecast(done, reading, outcome)
            if self.rollups is not None:
                self._summarize(done, reading, outcome)
        if len(readings) > 1:
            try:
                self._device(done, readings)
            except Exception as exc:
                first = readings[0]
                done.engine_errors.append(f"{first.site}/{first.device}/{DEVICE_METRIC}: "
                                          f"{type(exc).__name__}: {exc}")
        return None

    def _value_only(self, reading: Reading) -> str:
        """The reading's point without scores, when the engine failed on it."""
        value = float_field(reading.value) or "0.0"
        return (f"{self._series.prefix(reading.site, reading.device, reading.metric)} "
                f"value={value} {timestamp(reading.ts, self.precision)}")

    def _forecast(self, done: Handled, reading: Reading, outcome: Outcome) -> None:
        """Forecast points and early warnings (detector.forecast): logic in detector/forecast."""
        try:
            lines, alerts = self.forecasts.observe(  # type: ignore[union-attr]
                reading.site, reading.device, reading.metric, reading.ts, reading.value,
                anomaly_event=None if outcome.event is None else outcome.event.state)
        except Exception as exc:  # a forecaster bug must not lose the reading
            done.engine_errors.append(f"{reading.stream}: forecast: {type(exc).__name__}: {exc}")
            return
        done.lines.extend(lines)
        for alert in alerts:
            done.alerts.append(alert)
            done.lines.append(alert_line(
                self._alert_measurement, site=alert.site, device=alert.device,
                metric=alert.metric, severity=alert.severity, state=alert.state,
                fingerprint=alert.fingerprint, value=alert.value, score=alert.score,
                text=alert.annotations["summary"], ts=alert.ts))

    def _summarize(self, done: Handled, reading: Reading, outcome: Outcome) -> None:
        """Hourly and daily summaries (detector.summaries): logic in detector/summaries."""
        try:
            done.lines.extend(self.rollups.observe(  # type: ignore[union-attr]
                reading.site, reading.device, reading.metric, reading.ts, reading.value,
                anomaly=outcome.anomaly,
                alert=outcome.event is not None and outcome.event.state == "firing"))
        except Exception as exc:  # a summary bug must not lose the reading
            done.engine_errors.append(f"{reading.stream}: summary: {type(exc).__name__}: {exc}")

    def _device(self, done: Handled, readings: list[Reading]) -> None:
        first = readings[0]
        self._dirty[f"{first.site}/{first.device}/{DEVICE_METRIC}"] = None
        outcome = self.engine.process_device(first.site, first.device, first.ts,
                                             {r.metric: r.value for r in readings})
        if outcome is None:
            return
        if self._device_points:
            done.lines.append(self._line(first.site, first.device, DEVICE_METRIC, first.ts,
                                         None, outcome))
        if outcome.event is not None:
            self._alert(done, first.site, first.device, DEVICE_METRIC, outcome.event)

    def _line(self, site: str, device: str, metric: str, ts: float, value: float | None,
              outcome: Outcome) -> str:
        return reading_line(self._series.prefix(site, device, metric), ts, value,
                            outcome.scores, outcome.score, outcome.threshold, outcome.anomaly,
                            self.precision)

    def _alert(self, done: Handled, site: str, device: str, metric: str,
               event: AlertEvent) -> None:
        alert = alert_from_event(site, device, metric, event)
        done.alerts.append(alert)
        done.lines.append(alert_line(
            self._alert_measurement, site=site, device=device, metric=metric,
            severity=alert.severity, state=alert.state, fingerprint=alert.fingerprint,
            value=alert.value, score=alert.score, text=alert.annotations["summary"],
            ts=alert.ts, precision=self.precision))

    # -- read-only uses from other threads ----------------------------------------------------

    def peek(self, readings: list[Reading]) -> list[dict[str, Any]]:
        """Scores and decisions for ``readings`` against the live models, learning nothing.

        ``status`` says whether the score means anything: "scored", "unknown stream"
        (never seen: 0.0 is a placeholder, not "normal") or "warming up", with
        ``readings_needed`` before it scores and a ``detail`` sentence.
        """
        answers = []
        with self.lock:
            for r in readings:
                outcome = self.engine.peek(r.site, r.device, r.metric, r.ts, r.value)
                known, learned, needed = self.engine.warmup_left(r.site, r.device, r.metric)
                answer = {"site": r.site, "device": r.device, "metric": r.metric,
                          "ts": r.ts, "value": r.value, "scores": outcome.scores,
                          "score": outcome.score, "threshold": outcome.threshold,
                          "anomaly": outcome.anomaly,
                          "would_alert": None if outcome.event is None
                          else outcome.event.state,
                          "status": "scored", "readings_needed": needed}
                if not known:
                    answer["status"] = "unknown stream"
                    answer["detail"] = (f"no reading of {r.stream} was ever received: the "
                                        f"score is a placeholder, not a verdict; the stream "
                                        f"scores after about {needed} readings")
                elif needed:
                    answer["status"] = "warming up"
                    answer["detail"] = (f"{r.stream} is warming up: {learned} readings "
                                        f"learned, about {needed} more needed before it scores")
                answers.append(answer)
        return answers

    def summaries(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            found = self.engine.stream_summaries()
            if self.sequences is not None:
                for key, summary in found.items():
                    summary["sequence"] = self.sequences.stream(key)
            if self.forecasts is not None:  # ready, season, step, late, warning states
                for key, forecast in self.forecasts.summaries().items():
                    if key in found:
                        found[key]["forecast"] = forecast
            return found

    def stream_count(self) -> int:
        with self.lock:
            return len(self.engine)

    def snapshot(self) -> bytes:
        with self.lock:
            return self.engine.snapshot()

    # -- checkpoints, a few streams at a time (the caller holds ``lock``) ----------------------

    def take_dirty(self) -> list[str]:
        """The streams changed since the last call, in the order they first changed."""
        dirty, self._dirty = self._dirty, {}
        return list(dirty)

    def stream_keys(self) -> list[str]:
        return self.engine.stream_keys()

    def stream_state_bytes(self, key: str) -> bytes | None:
        """One stream's state as ``snapshot.plain_bytes`` (None: the engine has no such
        stream, e.g. it was evicted)."""
        state = self.engine.stream_state(key)
        return None if state is None else snapshot.plain_bytes(state)

    def checkpointed(self, keys: set[str] | None = None) -> None:
        """The records of ``keys`` (default: every stream) are on disk: the evicted copies
        of those can go."""
        if self.gate is not None:
            with self.lock:
                self.gate.checkpointed(self.engine, keys)


def alert_from_event(site: str, device: str, metric: str, event: AlertEvent) -> Alert:
    """The contract's alert for an engine transition, with a one-line summary.

    >>> from detector.engine import AlertEvent
    >>> event = AlertEvent("firing", "critical", "fp", "anomaly", 10.0, 12.0, 93.4, 0.999,
    ...                    0.999, {"zscore": 7.8}, 0.5)
    >>> alert_from_event("plant-1", "boiler-1", "supply_temp", event).annotations["summary"]
    'supply_temp on plant-1/boiler-1 is anomalous: 93.4 (score 0.999)'
    """
    where = f"{site}/{device}"
    subject = f"device {where} (its metrics together)" if metric == DEVICE_METRIC \
        else f"{metric} on {where}"
    if event.state == "firing":
        summary = f"{subject} is anomalous: {event.value:.6g} (score {event.score:.3f})"
    else:
        summary = f"{subject} is back to normal"
    return Alert(
        fingerprint=event.fingerprint, state=event.state,
        severity=event.severity,  # type: ignore[arg-type]
        site=site, device=device, metric=metric, rule=event.rule, value=event.value,
        score=event.score, threshold=event.threshold, starts_at=event.started_at, ts=event.ts,
        ends_at=event.ts if event.state == "resolved" else None, scores=dict(event.scores),
        annotations={"summary": summary, "peak_score": f"{event.peak_score:.4f}"})
