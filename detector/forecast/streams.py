"""Forecasts and early warnings of every stream in the detector service (pure: no I/O).

The message handler calls ``observe`` after the engine decided on each reading. Every
``every`` readings of a forecast stream this writes the next ``horizon`` steps as points
of the ``forecast.measurement`` measurement (tags like the readings, fields ``forecast``,
``lower``, ``upper``, ``step``) at their future timestamps; a later forecast for the same
time overwrites the earlier point (same series and timestamp), so the band in Grafana is
always the newest forecast. Each forecast also advances the stream's early-warning rules
(``detector.forecast.warnings``, see ``detector.forecast.warning``).

>>> from detector.forecast.settings import ForecastSettings
>>> forecasts = StreamForecasts(ForecastSettings(enabled=True, season_s=0, horizon=2,
...                                              every=50, model={"warmup": 5}))
>>> for t in range(100):
...     lines, alerts = forecasts.observe("s", "d", "m", 60.0 * t, 20.0)
>>> [line.split(" ")[0] for line in lines]
['forecasts,site=s,device=d,metric=m', 'forecasts,site=s,device=d,metric=m']
>>> lines[0].split(" ")[1:]   # a constant stream: a band as narrow as float noise
['forecast=20.0,lower=19.999999979,upper=20.000000021,step=1i', '6000000000']
"""

from __future__ import annotations

from typing import Any

import orjson

from detector.forecast.model import Forecaster
from detector.forecast.settings import ForecastSettings, StreamForecast, WarningRule, resolve
from detector.forecast.warning import WarningMachine
from detector.lineprotocol import SeriesKeys, float_field, timestamp
from iotwatch.contracts import Alert

SNAPSHOT_VERSION = 1


class _Stream:
    __slots__ = ("config", "model", "readings", "warnings")

    def __init__(self, config: StreamForecast, model: Forecaster,
                 warnings: list[WarningMachine]) -> None:
        self.config = config
        self.model = model
        self.readings = 0
        self.warnings = warnings


class StreamForecasts:
    """Per-stream forecasters and early-warning state machines."""

    def __init__(self, settings: ForecastSettings, precision: str = "us") -> None:
        self.settings = settings
        self.precision = precision  # influxdb.precision: one unit per write
        self._series = SeriesKeys(settings.measurement)
        self._streams: dict[str, _Stream | None] = {}   # None: a stream not forecast

    @property
    def active(self) -> bool:
        """Whether any stream can be forecast at all (else ``observe`` is never needed)."""
        settings = self.settings
        return (settings.enabled or bool(settings.warnings)
                or any(rule.enabled for rule in settings.streams))

    @property
    def warning_rules(self) -> frozenset[str]:
        """The rule names of the early warnings (their alerts' ``rule``)."""
        return frozenset(rule.rule for rule in self.settings.warnings)

    def observe(self, site: str, device: str, metric: str, ts: float, value: float, *,
                anomaly_event: str | None = None) -> tuple[list[str], list[Alert]]:
        """Learn one reading; the forecast points and early-warning alerts it produced.

        ``anomaly_event`` is the stream's anomaly alert transition on this reading
        ("firing", "resolved" or None): a firing anomaly alert takes over a warning.
        """
        key = f"{site}/{device}/{metric}"
        stream = self._streams.get(key, False)
        if stream is False:
            stream = self._streams[key] = self._new(site, device, metric, key)
        if stream is None:
            return [], []
        model = stream.model
        model.learn_one(ts, value)
        stream.readings += 1
        alerts: list[Alert] = []
        for machine in stream.warnings:   # the real value or alert may end a warning
            alert = machine.observe(ts, value, anomaly_event)
            if alert is not None:
                alerts.append(alert)
        if stream.readings % stream.config.every or not model.ready:
            return [], alerts
        points = model.forecast(stream.config.horizon)
        prefix = self._series.prefix(site, device, metric)
        lines = []
        for step, point in enumerate(points, start=1):
            fields = [f"{name}={text}" for name, text in (
                ("forecast", float_field(point.value)), ("lower", float_field(point.lower)),
                ("upper", float_field(point.upper))) if text is not None]
            if fields:
                lines.append(f"{prefix} {','.join(fields)},step={step}i "
                             f"{timestamp(point.ts, self.precision)}")
        for machine in stream.warnings:
            alert = machine.forecast(ts, value, points)
            if alert is not None:
                alerts.append(alert)
        return lines, alerts

    def _new(self, site: str, device: str, metric: str, key: str) -> _Stream | None:
        from detector.engine.streams import matches

        rules: list[WarningRule] = [r for r in self.settings.warnings if matches(r.match, key)]
        config = resolve(self.settings, key, force=bool(rules))  # a warning needs forecasts
        if config is None:
            return None
        model = self.settings.model
        forecaster = Forecaster(config.season_s, interval=self.settings.interval,
                                **model.model_dump())
        return _Stream(config, forecaster,
                       [WarningMachine(rule, site, device, metric) for rule in rules])

    def __len__(self) -> int:
        return sum(stream is not None for stream in self._streams.values())

    def summaries(self) -> dict[str, dict[str, Any]]:
        """``site/device/metric`` -> the forecaster's state in brief (for /streams, docs)."""
        return {key: {"ready": s.model.ready, "season": s.model.season,
                      "step_s": s.model.step_s, "late": s.model.late,
                      "warnings": {m.rule.rule: m.state for m in s.warnings}}
                for key, s in self._streams.items() if s is not None}

    # -- checkpoints --------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        streams = {key: {"readings": s.readings, "model": s.model.state(),
                         "config": self._config_key(s),
                         "warnings": {m.rule.rule: m.state_dict() for m in s.warnings}}
                   for key, s in self._streams.items() if s is not None}
        return orjson.dumps({"version": SNAPSHOT_VERSION, "streams": streams})

    def _config_key(self, stream: _Stream) -> list[Any]:
        """What the saved model's shape depends on: a change means learning afresh."""
        return [stream.config.season_s, self.settings.model.max_season]

    def restore(self, data: bytes) -> int:
        """Load a snapshot; returns the number of streams restored."""
        saved = orjson.loads(data)
        if saved.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"forecast checkpoint version {saved.get('version')!r}, "
                             f"expected {SNAPSHOT_VERSION}")
        for key, state in saved["streams"].items():
            site, device, metric = key.split("/", 2)
            stream = self._new(site, device, metric, key)
            self._streams[key] = stream
            if stream is None:
                continue
            if state.get("config") == self._config_key(stream):  # else: learns afresh
                stream.model.load_state(state["model"])
                stream.readings = int(state["readings"])
            for machine in stream.warnings:
                if machine.rule.rule in state["warnings"]:
                    machine.load_state(state["warnings"][machine.rule.rule])
        return len(self)
