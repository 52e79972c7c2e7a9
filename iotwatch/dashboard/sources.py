"""Where the dashboard reads points: the places Grafana reads, nothing of its own.

Two kinds of store behind one small interface (``PointSource``), each answering with
pandas frames of the same columns:

- ``influxql.InfluxQLSource``: InfluxQL over HTTP (``/query``, epoch ms), grouped into at
  most ``MAX_BUCKETS`` time buckets per stream on the server. These are the queries
  Grafana's dashboard sends, so it reads what Grafana reads: InfluxDB 1.x (database, basic
  auth when a user is set), and with ``api: v2`` InfluxDB 2.x through its v1-compatible
  ``/query`` (a DBRP mapping from a database named like the bucket; ``compose/`` makes
  it) and 3.x (databases are named like buckets), with ``Authorization: Token``.
- ``linefile.LineFileSource``: the detector's ``file`` sink (the demo without InfluxDB),
  read incrementally, a bounded number of readings per stream kept.

A window always ends at the newest stored reading, not at the wall clock, so a replay or
the demo's accelerated plant time (readings stamped in the past) shows up as well as a
live plant.

Frames:
    streams   site, device, metric, last (Timestamp)
    readings  time, site, device, metric, value, score, threshold, anomaly
    alerts    time, site, device, metric, state, severity, value, score, text, fingerprint
    service   time, service, readings_in, points_written, rejected, alerts_fired, ...
    bands     time, site, device, metric, lower, upper, forecast   (the forecast hook)

>>> selection = Selection(sites=("plant-1",), window_s=600)
>>> selection.matches("plant-1", "boiler-1", "temp"), selection.matches("plant-2", "b", "t")
(True, False)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from iotwatch.config import InfluxSettings

MAX_BUCKETS = 600
ALERT_LIMIT = 200
SERVICE_LIMIT = 720
SERVICE_MEASUREMENT = "iotwatch_service"

READING_COLUMNS = ["time", "site", "device", "metric", "value", "score", "threshold", "anomaly"]
ALERT_COLUMNS = ["time", "site", "device", "metric", "state", "severity", "value", "score",
                 "text", "fingerprint"]
STREAM_COLUMNS = ["site", "device", "metric", "last"]
SERVICE_COLUMNS = ["time", "service", "readings_in", "points_written", "rejected",
                   "alerts_fired", "alerts_resolved", "spool_depth"]
BAND_COLUMNS = ["time", "site", "device", "metric", "lower", "upper", "forecast"]


class SourceError(Exception):
    """The store could not be read; the message says which and why."""


@dataclass(frozen=True)
class Selection:
    """What the page's filters ask for: empty tuples mean everything."""

    sites: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    window_s: float = 3600.0

    def matches(self, site: str, device: str, metric: str) -> bool:
        return ((not self.sites or site in self.sites)
                and (not self.devices or device in self.devices)
                and (not self.metrics or metric in self.metrics))


class PointSource(Protocol):
    def describe(self) -> str: ...

    def streams(self) -> pd.DataFrame: ...

    def readings(self, selection: Selection) -> pd.DataFrame: ...

    def alerts(self, selection: Selection, limit: int = ALERT_LIMIT) -> pd.DataFrame: ...

    def service_stats(self, limit: int = SERVICE_LIMIT) -> pd.DataFrame: ...

    def bands(self, selection: Selection) -> pd.DataFrame:
        """Forecast bands to draw behind the readings (none yet: a ``forecasts``
        measurement will fill this, in the frame of ``BAND_COLUMNS``)."""
        ...


def empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({column: [] for column in columns})


def window_of(streams: pd.DataFrame, selection: Selection) -> tuple[int, int, int] | None:
    """``(start_ms, end_ms, bucket_ms)`` of the selection: the window ending at the newest
    selected reading, cut into at most MAX_BUCKETS buckets; None when nothing matches.

    >>> streams = pd.DataFrame({"site": ["a"], "device": ["d"], "metric": ["m"],
    ...                         "last": [pd.Timestamp(60_000, unit="ms", tz="UTC")]})
    >>> window_of(streams, Selection(window_s=60))
    (0, 60000, 100)
    """
    chosen = streams[[selection.matches(s, d, m) for s, d, m in
                      zip(streams["site"], streams["device"], streams["metric"], strict=True)]]
    if chosen.empty:
        return None
    end = int(chosen["last"].max().value // 1_000_000)
    window_ms = int(selection.window_s * 1000)
    return end - window_ms, end, max(1, window_ms // MAX_BUCKETS)


def downsample(rows: pd.DataFrame, bucket_ms: int) -> pd.DataFrame:
    """Readings grouped per stream into ``bucket_ms`` buckets: mean value and threshold,
    peak score and anomaly flag (a spike must not be averaged away)."""
    if rows.empty:
        return empty(READING_COLUMNS)
    rows = rows.assign(time=rows["time"].dt.floor(f"{bucket_ms}ms"))
    grouped = rows.groupby(["site", "device", "metric", "time"], as_index=False).agg(
        value=("value", "mean"), score=("score", "max"), threshold=("threshold", "mean"),
        anomaly=("anomaly", "max"))
    return grouped[READING_COLUMNS]


def frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    """Rows as a frame of exactly ``columns``; ``time`` and ``last`` from epoch ms."""
    if not rows:
        return empty(columns)
    frame = pd.DataFrame(rows)
    for column in columns:
        if column not in frame:
            frame[column] = None
    frame = frame[columns]
    if "time" in frame:
        frame["time"] = pd.to_datetime(frame["time"], unit="ms", utc=True)
    if "last" in frame:
        frame["last"] = pd.to_datetime(frame["last"], unit="ms", utc=True)
    return frame


def open_source(settings: InfluxSettings | None, file: Path | None) -> PointSource:
    """The file sink's file when given, else InfluxDB by ``settings.api``."""
    from iotwatch.dashboard.influxql import InfluxQLSource
    from iotwatch.dashboard.linefile import LineFileSource

    if file is not None:
        measurement = settings.measurement if settings else "readings"
        alerts = settings.alert_measurement if settings else "alerts"
        precision = settings.precision if settings else "us"
        return LineFileSource(file, measurement, alerts, precision)
    return InfluxQLSource(settings or InfluxSettings())
