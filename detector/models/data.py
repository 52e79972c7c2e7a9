"""Normal data to train on: recorded files (NAB, SKAB, the publisher's) or InfluxDB 1.x.

Files load through :mod:`detector.evaluate.datasets`, the loaders evaluation uses, so a
model trains on exactly the rows evaluation would feed it. Labelled rows are never
trained on: a series is cut at its labelled windows and each normal stretch becomes its
own series (windows do not straddle a gap). ``first_rows`` keeps only each file's first
rows (SKAB's 400-row training prefix, NAB's probation period).

``--stream GLOB`` trains one stream model on every matching stream; ``--device
SITE/DEVICE`` one device model on the device's metrics, aligned on timestamps (a
reading missing a metric keeps that metric's previous value, as the live detector does).

>>> import numpy as np
>>> from detector.evaluate.datasets import Series, Span
>>> s = Series("c", "n", "site", "dev", ("t",), np.arange(10.0), np.arange(10.0)[:, None],
...            (Span(4, 5),), 0)
>>> [part[:, 0].tolist() for part in normal_parts(s, s.values)]
[[0.0, 1.0, 2.0, 3.0], [6.0, 7.0, 8.0, 9.0]]
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from detector.engine.streams import check_pattern, matches
from detector.evaluate import datasets
from detector.evaluate.datasets import DatasetError, Series
from detector.models.train import TrainingData


def normal_parts(series: Series, values: np.ndarray) -> list[np.ndarray]:
    """The stretches of ``values`` (row-aligned with ``series``) outside labelled spans."""
    keep = np.ones(len(values), dtype=bool)
    for span in series.spans:
        keep[span.first:span.last + 1] = False
    edges = np.flatnonzero(np.diff(np.concatenate([[0], keep.astype(int), [0]])))
    return [values[a:b] for a, b in zip(edges[::2], edges[1::2], strict=True)]


def from_files(data_dir: Path, fmt: str | None, labels: Path | None, *, stream: str | None,
               device: str | None, first_rows: int | None = None) -> TrainingData:
    """Training data from recorded files; DatasetError when nothing fits the selection."""
    fmt = fmt or datasets.detect_format(data_dir)
    if labels is None:
        labels = datasets.default_labels(data_dir, fmt)
    loaded = datasets.load(data_dir, fmt, labels)
    return from_series(loaded, stream=stream, device=device, first_rows=first_rows,
                       source=f"{fmt}:{data_dir}")


def from_series(loaded: Sequence[Series], *, stream: str | None, device: str | None,
                first_rows: int | None = None, source: str = "") -> TrainingData:
    """Training data from loaded series (what ``iotwatch evaluate --model KIND`` uses)."""
    if device is not None:
        return _device_data(loaded, device, first_rows, source)
    pattern = stream or "#"
    check_pattern(pattern)
    parts, stamps, metric = [], [], None
    for s in loaded:
        for j, name in enumerate(s.metrics):
            if not matches(pattern, f"{s.site}/{s.device}/{name}"):
                continue
            cut = slice(0, first_rows)
            parts += normal_parts(s, s.values[cut, j:j + 1]) if first_rows is None else \
                [s.values[cut, j:j + 1]]
            stamps.append(s.timestamps[cut])
            metric = name if metric in (None, name) else "value"
    if not parts:
        raise DatasetError(f"no stream matches {pattern!r} (streams are site/device/metric: "
                           f"{', '.join(_names(loaded)[:5])} ...)")
    return TrainingData(parts, np.concatenate(stamps), (metric or "value",), "stream",
                        pattern, source)


def _device_data(loaded: Sequence[Series], device: str, first_rows: int | None,
                 source: str) -> TrainingData:
    site, _, name = device.partition("/")
    chosen = [s for s in loaded if s.site == site and s.device == name]
    if not chosen:
        devices = sorted({f"{s.site}/{s.device}" for s in loaded})
        raise DatasetError(f"no device {device!r} (devices: {', '.join(devices[:8])})")
    if len(chosen) == 1 and len(chosen[0].metrics) > 1:  # SKAB: one file, every metric
        s = chosen[0]
        values, stamps, metrics, spans_of = s.values, s.timestamps, s.metrics, s
    else:  # the publisher: one series per metric
        metrics = tuple(sorted(m for s in chosen for m in s.metrics))
        stamps, values = align({m: (s.timestamps, s.values[:, 0]) for s in chosen
                                for m in s.metrics}, metrics)
        spans_of = None
    if first_rows is not None:
        parts, stamps = [values[:first_rows]], stamps[:first_rows]
    elif spans_of is not None:
        parts = normal_parts(spans_of, values)
    else:
        keep = np.ones(len(stamps), dtype=bool)
        for s in chosen:
            for span in s.spans:
                begin, end = s.timestamps[span.first], s.timestamps[span.last]
                keep &= ~((stamps >= begin) & (stamps <= end))
        edges = np.flatnonzero(np.diff(np.concatenate([[0], keep.astype(int), [0]])))
        parts = [values[a:b] for a, b in zip(edges[::2], edges[1::2], strict=True)]
    return TrainingData(parts, stamps, metrics, "device", device, source)


def align(columns: dict[str, tuple[np.ndarray, np.ndarray]],
          metrics: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """One row per distinct timestamp, a column per metric, gaps carried forward.

    Rows before every metric has a value are dropped.

    >>> ts, v = align({"a": (np.array([1., 2., 3.]), np.array([1., 2., 3.])),
    ...                "b": (np.array([2., 3.]), np.array([20., 30.]))}, ["a", "b"])
    >>> ts.tolist(), v.tolist()
    ([2.0, 3.0], [[2.0, 20.0], [3.0, 30.0]])
    """
    import pandas as pd

    frame = pd.DataFrame({m: pd.Series(columns[m][1], index=columns[m][0]).groupby(level=0)
                          .last() for m in metrics}).sort_index().ffill().dropna()
    return frame.index.to_numpy(dtype=float), frame[list(metrics)].to_numpy(dtype=float)


def _names(loaded: Sequence[Series]) -> list[str]:
    return [f"{s.site}/{s.device}/{m}" for s in loaded for m in s.metrics]


def from_influxdb(url: str, database: str, start: float, end: float, *, stream: str | None,
                  device: str | None, measurement: str = "readings",
                  timeout_s: float = 30.0) -> TrainingData:
    """Readings between ``start`` and ``end`` (epoch seconds) from an InfluxDB 1.x.

    Only non-anomalous points are trained on (``anomaly = 0``, what the detector wrote).
    """
    where = [f"time >= {int(start * 1e9)}", f"time < {int(end * 1e9)}"]
    if device is not None:
        site, _, name = device.partition("/")
        where += [f"\"site\" = '{_quote(site)}'", f"\"device\" = '{_quote(name)}'"]
    query = (f'SELECT "value", "anomaly" FROM "{measurement}" WHERE {" AND ".join(where)} '
             f'GROUP BY "site", "device", "metric"')
    body = urllib.parse.urlencode({"q": query, "db": database, "epoch": "ms"}).encode()
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/query", data=body,
                                    timeout=timeout_s) as response:
            answer = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DatasetError(f"InfluxDB {url}: query failed ({exc})") from None
    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for result in answer.get("results", []):
        if "error" in result:
            raise DatasetError(f"InfluxDB {url}: {result['error']}")
        for series in result.get("series", []):
            tags = series.get("tags", {})
            key = f"{tags.get('site')}/{tags.get('device')}/{tags.get('metric')}"
            cols = series["columns"]
            rows = [r for r in series["values"] if r[cols.index("value")] is not None
                    and not r[cols.index("anomaly")]]
            found[key] = (np.array([r[0] / 1000.0 for r in rows]),
                          np.array([float(r[cols.index("value")]) for r in rows]))
    source = f"influxdb:{url}/{database}/{measurement}"
    if device is not None:
        metrics = tuple(sorted(k.rsplit("/", 1)[1] for k in found))
        if len(metrics) < 2:
            raise DatasetError(f"InfluxDB {url}: device {device} has {len(metrics)} metric(s) "
                               "in that time range (a device model needs at least 2)")
        stamps, values = align({k.rsplit("/", 1)[1]: v for k, v in found.items()}, metrics)
        return TrainingData([values], stamps, metrics, "device", device, source)
    pattern = stream or "#"
    check_pattern(pattern)
    chosen = {k: v for k, v in found.items() if matches(pattern, k) and len(v[0])}
    if not chosen:
        raise DatasetError(f"InfluxDB {url}: no points of streams {pattern!r} between the "
                           f"given times in {database}.{measurement}")
    metric_names = {k.rsplit("/", 1)[1] for k in chosen}
    metric = metric_names.pop() if len(metric_names) == 1 else "value"
    return TrainingData([v[1][:, None] for v in chosen.values()],
                        np.concatenate([v[0] for v in chosen.values()]), (metric,), "stream",
                        pattern, source)


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")
