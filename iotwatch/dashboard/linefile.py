"""The detector's ``file`` sink (line protocol) as a point store: the demo without InfluxDB."""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from pathlib import Path

import pandas as pd

from detector.lineprotocol import PER_SECOND, parse_line
from iotwatch.dashboard.sources import (
    ALERT_COLUMNS,
    ALERT_LIMIT,
    BAND_COLUMNS,
    READING_COLUMNS,
    SERVICE_COLUMNS,
    SERVICE_LIMIT,
    SERVICE_MEASUREMENT,
    STREAM_COLUMNS,
    Selection,
    SourceError,
    downsample,
    empty,
    frame,
    window_of,
)

MAX_FILE_POINTS = 20_000
# A long file is read this much per refresh, so the first page answers quickly.
MAX_READ_BYTES = 32 << 20


class LineFileSource:
    """The detector's ``file`` sink, read incrementally (only the new lines each time).

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "points.lp"
    >>> _ = path.write_text("readings,site=s,device=d,metric=m value=1.0,score=0.1,"
    ...                     "threshold=0.65,anomaly=0i 60000000\\n")
    >>> source = LineFileSource(path)
    >>> source.streams()[["site", "device", "metric"]].values.tolist()
    [['s', 'd', 'm']]
    >>> source.readings(Selection())[["value", "score"]].values.tolist()
    [[1.0, 0.1]]
    """

    def __init__(self, path: Path, measurement: str = "readings",
                 alert_measurement: str = "alerts", precision: str = "us") -> None:
        self.path = Path(path)
        # The file holds timestamps in the detector's influxdb.precision; frames use ms.
        self._per_ms = PER_SECOND[precision] // 1000
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
        return frame(rows, STREAM_COLUMNS)

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
        return downsample(frame(rows, READING_COLUMNS), bucket)

    def alerts(self, selection: Selection, limit: int = ALERT_LIMIT) -> pd.DataFrame:
        self._catch_up()
        with self._lock:
            rows = [a for a in reversed(self._alerts)
                    if selection.matches(a["site"], a["device"], a["metric"])][:limit]
        return frame(rows, ALERT_COLUMNS)

    def service_stats(self, limit: int = SERVICE_LIMIT) -> pd.DataFrame:
        self._catch_up()
        with self._lock:
            rows = list(self._service)[-limit:]
        return frame(rows, SERVICE_COLUMNS)

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
        ts //= self._per_ms
        if measurement == self.measurement:
            key = (tags.get("site", ""), tags.get("device", ""), tags.get("metric", ""))
            self._readings[key].append((ts, fields.get("value"), fields.get("score"),
                                        fields.get("threshold"), fields.get("anomaly")))
        elif measurement == self.alert_measurement:
            self._alerts.append({"time": ts, **tags, **fields})
        elif measurement == SERVICE_MEASUREMENT:
            self._service.append({"time": ts, **tags, **fields})
