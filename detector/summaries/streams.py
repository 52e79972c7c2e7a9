"""Hourly and daily summaries of every stream in the detector service (pure: no I/O).

The message handler calls ``observe`` after the engine decided on each reading; when a
reading closes a UTC hour or day of its stream, that period's summary is returned as a
line of ``summaries.measurement`` (tags like the readings plus ``period``; fields
``mean``, ``min``, ``max``, ``count``, ``anomalies``, ``alerts``, ``late`` and ``sum`` for
counters) at the period's start.

>>> from detector.summaries.settings import SummarySettings
>>> summaries = StreamSummaries(SummarySettings(enabled=True))
>>> summaries.observe("s", "d", "m", 0.0, 1.0, anomaly=False, alert=False)
[]
>>> summaries.observe("s", "d", "m", 3600.0, 2.0, anomaly=False, alert=False)
['summaries,site=s,device=d,metric=m,period=hour mean=1.0,min=1.0,max=1.0,count=1i,anomalies=0i,alerts=0i,late=0i 0']
"""

from __future__ import annotations

import orjson

from detector.lineprotocol import SeriesKeys, float_field, timestamp
from detector.summaries.rollup import Rollup, Summary
from detector.summaries.settings import SummarySettings, resolve

SNAPSHOT_VERSION = 1


def summary_line(prefix: str, summary: Summary, precision: str = "us") -> str:
    """The line protocol of one closed period (``prefix``: measurement and stream tags)."""
    fields = [f"{name}={text}" for name, text in (
        ("mean", float_field(summary.mean)), ("min", float_field(summary.min)),
        ("max", float_field(summary.max))) if text is not None]
    fields += [f"count={summary.count}i", f"anomalies={summary.anomalies}i",
               f"alerts={summary.alerts}i", f"late={summary.late}i"]
    if summary.sum is not None and float_field(summary.sum) is not None:
        fields.append(f"sum={float_field(summary.sum)}")
    return (f"{prefix},period={summary.period} {','.join(fields)} "
            f"{timestamp(summary.start, precision)}")


class StreamSummaries:
    """The open hour and day of every summarised stream."""

    def __init__(self, settings: SummarySettings, precision: str = "us") -> None:
        self.settings = settings
        self.precision = precision  # influxdb.precision: one unit per write
        self._series = SeriesKeys(settings.measurement)
        self._streams: dict[str, Rollup | None] = {}

    @property
    def active(self) -> bool:
        return self.settings.enabled or any(r.enabled for r in self.settings.streams)

    def observe(self, site: str, device: str, metric: str, ts: float, value: float, *,
                anomaly: bool, alert: bool) -> list[str]:
        key = f"{site}/{device}/{metric}"
        rollup = self._streams.get(key, False)
        if rollup is False:
            counter = resolve(self.settings, key)
            rollup = self._streams[key] = None if counter is None else Rollup(counter)
        if rollup is None:
            return []
        closed = rollup.add(ts, value, anomaly=anomaly, alert=alert)
        if not closed:
            return []
        prefix = self._series.prefix(site, device, metric)
        return [summary_line(prefix, summary, self.precision) for summary in closed]

    def __len__(self) -> int:
        return sum(r is not None for r in self._streams.values())

    def snapshot(self) -> bytes:
        return orjson.dumps({"version": SNAPSHOT_VERSION, "streams": {
            key: r.state() for key, r in self._streams.items() if r is not None}})

    def restore(self, data: bytes) -> int:
        saved = orjson.loads(data)
        if saved.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"summary checkpoint version {saved.get('version')!r}, "
                             f"expected {SNAPSHOT_VERSION}")
        for key, state in saved["streams"].items():
            counter = resolve(self.settings, key)
            if counter is None:
                continue
            rollup = Rollup(counter)
            rollup.load_state(state)
            self._streams[key] = rollup
        return len(self)
