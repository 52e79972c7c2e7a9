"""InfluxQL over HTTP: what Grafana's dashboard reads, from InfluxDB 1.x, 2.x or 3.x.

>>> influxql_regex(("boiler-1", "pump.2"))
'/^(boiler\\\\-1|pump\\\\.2)$/'
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pandas as pd

from iotwatch.config import InfluxSettings
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
    empty,
    frame,
    window_of,
)


def influxql_regex(values: tuple[str, ...]) -> str:
    """An InfluxQL regex literal matching exactly one of ``values``."""
    return "/^(" + "|".join(re.escape(v).replace("/", "\\/") for v in values) + ")$/"


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
        return frame([{**r, "last": r["time"]} for r in rows], STREAM_COLUMNS)

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
        return frame(rows, READING_COLUMNS)

    def alerts(self, selection: Selection, limit: int = ALERT_LIMIT) -> pd.DataFrame:
        where = self._where(selection).removeprefix(" AND ")
        rows = self.query(
            'SELECT "site", "device", "metric", "state", "severity", "value", "score", "text", '
            f'"fingerprint" FROM "{self.alert_measurement}"'
            f'{" WHERE " + where if where else ""} ORDER BY time DESC LIMIT {int(limit)}')
        return frame(rows, ALERT_COLUMNS)

    def service_stats(self, limit: int = SERVICE_LIMIT) -> pd.DataFrame:
        rows = self.query(f'SELECT * FROM "{SERVICE_MEASUREMENT}" ORDER BY time DESC '
                          f'LIMIT {int(limit)}')
        return frame(rows, SERVICE_COLUMNS).sort_values("time", ignore_index=True)

    def bands(self, selection: Selection) -> pd.DataFrame:
        return empty(BAND_COLUMNS)

    @staticmethod
    def _where(selection: Selection) -> str:
        clauses = [f'"{key}" =~ {influxql_regex(values)}' for key, values in
                   (("site", selection.sites), ("device", selection.devices),
                    ("metric", selection.metrics)) if values]
        return "".join(f" AND {c}" for c in clauses)
