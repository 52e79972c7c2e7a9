"""Where the dashboard reads points: the places Grafana reads, nothing of its own.

Three stores behind one small interface (``PointSource``), each answering with pandas
frames of the same columns:

- ``InfluxQLSource``: InfluxQL over HTTP (``/query``, epoch ms), grouped into at most
  ``MAX_BUCKETS`` time buckets per stream on the server. The queries Grafana's dashboard
  sends, so it reads what Grafana reads: InfluxDB 1.x (database, basic auth when a user is
  set), and with ``api: v2`` InfluxDB 2.x through its v1-compatible ``/query`` (a DBRP
  mapping from a database named like the bucket; ``compose/`` makes it) and 3.x
  (databases are named like buckets), with ``Authorization: Token``.
- ``LineFileSource``: the detector's ``file`` sink (the demo without InfluxDB): new lines
  are read incrementally, at most ``MAX_FILE_POINTS`` readings per stream kept.

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
>>> influxql_regex(("boiler-1", "pump.2"))
'/^(boiler\\\\-1|pump\\\\.2)$/'
"""

from __future__ import annotations

import base64
import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from detector.lineprotocol import parse_line
from iotwatch.config import InfluxSettings

MAX_BUCKETS = 600
MAX_FILE_POINTS = 20_000
# A long file is read this much per refresh, so the first page answers quickly.
MAX_READ_BYTES = 32 << 20
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


def influxql_regex(values: tuple[str, ...]) -> str:
    """An InfluxQL regex literal matching exactly one of ``values``."""
    return "/^(" + "|".join(re.escape(v).replace("/", "\\/") for v in values) + ")$/"


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


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
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


# -- InfluxDB 1.x --------------------------------------------------------------------------


class InfluxQLSource:
    """InfluxQL over ``POST /query`` with ``epoch=ms`` (InfluxDB 1.x, 2.x, 3.x)."""

    def __init__(self, settings: InfluxSettings, timeout_s: float = 5.0) -> None:
        self.url = settings.url.rstrip("/")
        self.api = settings.api
        self.database = settings.database if settings.api == "v1" else settings.bucket
        self.measurement = settings.measurement
        self.alert_measurement = settings.alert_measurement
        self.timeout_s = timeout_s
        self._headers = {}
        if settings.api == "v2":
            if settings.token:
                self._headers["Authorization"] = f"Token {settings.token.get_secret_value()}"
        elif settings.username:
            secret = settings.password.get_secret_value() if settings.password else ""
            token = base64.b64encode(f"{settings.username}:{secret}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"

    def describe(self) -> str:
        if self.api == "v2":
            return f"InfluxDB (v2 API, InfluxQL) at {self.url}, bucket {self.database}"
        return f"InfluxDB 1.x at {self.url}, database {self.database}"

    def query(self, influxql: str) -> list[dict[str, Any]]:
        """Rows of every series (columns plus the series' tags)."""
        body = urllib.parse.urlencode({"db": self.database, "q": influxql,
                                       "epoch": "ms"}).encode()
        request = urllib.request.Request(f"{self.url}/query", data=body, headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as exc:
            raise SourceError(f"{self.describe()} answered {exc.code}: "
                              f"{exc.read()[:200].decode(errors='replace')}") from None
        except (OSError, ValueError) as exc:
            raise SourceError(f"{self.describe()} unreachable: {exc}") from None
        result = answer["results"][0]
        if "error" in result:
            raise SourceError(f"{self.describe()} rejected {influxql!r}: {result['error']}")
        rows = []
        for series in result.get("series") or []:
            tags = series.get("tags") or {}
            for values in series["values"]:
                rows.append({**dict(zip(series["columns"], values, strict=True)), **tags})
        return rows

    def streams(self) -> pd.DataFrame:
        rows = self.query(f'SELECT last("value") FROM "{self.measurement}" '
                          'GROUP BY "site", "device", "metric"')
        return _frame([{**r, "last": r["time"]} for r in rows], STREAM_COLUMNS)

    def readings(self, selection: Selection) -> pd.DataFrame:
        window = window_of(self.streams(), selection)
        if window is None:
            return empty(READING_COLUMNS)
        start, end, bucket = window
        rows = self.query(
            'SELECT mean("value") AS "value", max("score") AS "score", '
            'mean("threshold") AS "threshold", max("anomaly") AS "anomaly" '
            f'FROM "{self.measurement}" WHERE time >= {start}ms AND time <= {end}ms'
            f'{self._where(selection)} GROUP BY time({bucket}ms), "site", "device", "metric" '
            'fill(none)')
        return _frame(rows, READING_COLUMNS)

    def alerts(self, selection: Selection, limit: int = ALERT_LIMIT) -> pd.DataFrame:
        where = self._where(selection).removeprefix(" AND ")
        rows = self.query(
            'SELECT "site", "device", "metric", "state", "severity", "value", "score", "text", '
            f'"fingerprint" FROM "{self.alert_measurement}"'
            f'{" WHERE " + where if where else ""} ORDER BY time DESC LIMIT {int(limit)}')
        return _frame(rows, ALERT_COLUMNS)

    def service_stats(self, limit: int = SERVICE_LIMIT) -> pd.DataFrame:
        rows = self.query(f'SELECT * FROM "{SERVICE_MEASUREMENT}" ORDER BY time DESC '
                          f'LIMIT {int(limit)}')
        return _frame(rows, SERVICE_COLUMNS).sort_values("time", ignore_index=True)

    def bands(self, selection: Selection) -> pd.DataFrame:
        return empty(BAND_COLUMNS)

    @staticmethod
    def _where(selection: Selection) -> str:
        clauses = [f'"{key}" =~ {influxql_regex(values)}' for key, values in
                   (("site", selection.sites), ("device", selection.devices),
                    ("metric", selection.metrics)) if values]
        return "".join(f" AND {c}" for c in clauses)


# -- the file sink's line protocol -----------------------------------------------------------


class LineFileSource:
    """The detector's ``file`` sink, read incrementally (only the new lines each time).

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "points.lp"
    >>> _ = path.write_text("readings,site=s,device=d,metric=m value=1.0,score=0.1,"
    ...                     "threshold=0.65,anomaly=0i 60000\\n")
    >>> source = LineFileSource(path)
    >>> source.streams()[["site", "device", "metric"]].values.tolist()
    [['s', 'd', 'm']]
    >>> source.readings(Selection())[["value", "score"]].values.tolist()
    [[1.0, 0.1]]
    """

    def __init__(self, path: Path, measurement: str = "readings",
                 alert_measurement: str = "alerts") -> None:
        self.path = Path(path)
        self.measurement = measurement
        self.alert_measurement = alert_measurement
        self._lock = threading.Lock()
        self._offset = 0
        self._readings: dict[tuple[str, str, str], deque] = defaultdict(
            lambda: deque(maxlen=MAX_FILE_POINTS))
        self._alerts: deque = deque(maxlen=10 * ALERT_LIMIT)
        self._service: deque = deque(maxlen=SERVICE_LIMIT)

    def describe(self) -> str:
        return f"line-protocol file {self.path}"

    def streams(self) -> pd.DataFrame:
        self._catch_up()
        with self._lock:
            rows = [{"site": s, "device": d, "metric": m, "last": points[-1][0]}
                    for (s, d, m), points in self._readings.items() if points]
        return _frame(rows, STREAM_COLUMNS)

    def readings(self, selection: Selection) -> pd.DataFrame:
        window = window_of(self.streams(), selection)
        if window is None:
            return empty(READING_COLUMNS)
        start, end, bucket = window
        with self._lock:
            rows = [{"time": ts, "site": s, "device": d, "metric": m, "value": v, "score": sc,
                     "threshold": th, "anomaly": an}
                    for (s, d, m), points in self._readings.items()
                    if selection.matches(s, d, m)
                    for ts, v, sc, th, an in points if start <= ts <= end]
        return downsample(_frame(rows, READING_COLUMNS), bucket)

    def alerts(self, selection: Selection, limit: int = ALERT_LIMIT) -> pd.DataFrame:
        self._catch_up()
        with self._lock:
            rows = [a for a in reversed(self._alerts)
                    if selection.matches(a["site"], a["device"], a["metric"])][:limit]
        return _frame(rows, ALERT_COLUMNS)

    def service_stats(self, limit: int = SERVICE_LIMIT) -> pd.DataFrame:
        self._catch_up()
        with self._lock:
            rows = list(self._service)[-limit:]
        return _frame(rows, SERVICE_COLUMNS)

    def bands(self, selection: Selection) -> pd.DataFrame:
        return empty(BAND_COLUMNS)

    def _catch_up(self) -> None:
        """Parse the lines appended since the last call (a partial last line waits)."""
        with self._lock:
            try:
                with open(self.path, "rb") as store:
                    store.seek(self._offset)
                    chunk = store.read(MAX_READ_BYTES)
            except FileNotFoundError:
                return
            except OSError as exc:
                raise SourceError(f"cannot read {self.path}: {exc.strerror}") from None
            complete = chunk.rfind(b"\n") + 1
            self._offset += complete
            for raw in chunk[:complete].decode("utf-8", errors="replace").splitlines():
                if raw.strip() and not raw.startswith("#"):
                    self._take(raw)

    def _take(self, line: str) -> None:
        try:
            measurement, tags, fields, ts = parse_line(line)
        except ValueError:
            return  # the file sink writes whole lines; a torn one is not worth a page error
        if measurement == self.measurement:
            key = (tags.get("site", ""), tags.get("device", ""), tags.get("metric", ""))
            self._readings[key].append((ts, fields.get("value"), fields.get("score"),
                                        fields.get("threshold"), fields.get("anomaly")))
        elif measurement == self.alert_measurement:
            self._alerts.append({"time": ts, **tags, **fields})
        elif measurement == SERVICE_MEASUREMENT:
            self._service.append({"time": ts, **tags, **fields})


def open_source(settings: InfluxSettings | None, file: Path | None) -> PointSource:
    """The file sink's file when given, else InfluxDB by ``settings.api``."""
    if file is not None:
        measurement = settings.measurement if settings else "readings"
        alerts = settings.alert_measurement if settings else "alerts"
        return LineFileSource(file, measurement, alerts)
    return InfluxQLSource(settings or InfluxSettings())
