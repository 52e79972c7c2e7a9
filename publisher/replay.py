"""Replay of recorded CSV data: one file is one device, each value column one metric.

A file has a header, a timestamp column and one or more value columns:

- NAB: ``timestamp,value`` (comma); the metric is ``value`` (or ``--metric``).
- SKAB: ``datetime;Accelerometer1RMS;...;anomaly;changepoint`` (semicolon); every
  sensor column is a metric, named by the topic rule (``Volume Flow RateRMS`` ->
  ``Volume_Flow_RateRMS``); label columns (anomaly, changepoint, label, is_anomaly) are
  not sent.

Ground truth comes along: each run of rows flagged in an ``anomaly`` column (also
``is_anomaly``, ``label``, ``anomaly_label``) becomes a label (kind ``recorded``) of
every metric of its file, and NAB windows given as ``windows``
(``{"<category>/<name>.csv": [[start, end], ...]}``, matched on the end of each file's
path) become labels too, so a replay through the live pipeline can be scored. A label
is handed out once the replay has passed its end (``take_labels``), or cut at the last
row sent when the replay stops (``finish``).
- Anything alike: the delimiter is ``;`` when the header has one, else ``,``; the time
  column is the one named timestamp, datetime, time, date or ts, else the first.

The device is the file name without ``.csv`` (made topic-safe; when two files would give
the same device, their paths are used: ``valve1/0.csv`` -> ``valve1-0``). Every row is
sent, in file order, with its original timestamp. Pacing follows each file's own clock
from its first row, so several files replay side by side as a fleet does; a timestamp
that goes backwards is sent at once. A row that cannot be read is skipped, logged with
its file and line, and counted.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "machine_temperature.csv").write_text(
...     "timestamp,value\\n2013-12-02 21:15:00,73.96\\n2013-12-02 21:20:00,74.93\\n")
>>> replay = Replay(folder, site="nab")
>>> [(s.device, s.metric, s.offset_s, s.value) for s in replay]
[('machine_temperature', 'value', 0.0, 73.96), ('machine_temperature', 'value', 300.0, 74.93)]
"""

from __future__ import annotations

import csv
import heapq
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from iotwatch import IotwatchError
from iotwatch.timeparse import TimestampError, parse_timestamp
from iotwatch.topics import safe_segment
from publisher.faults import FaultLabel
from publisher.samples import Sample

log = logging.getLogger(__name__)

TIME_COLUMNS = ("timestamp", "datetime", "time", "date", "ts")
LABEL_COLUMNS = ("anomaly", "changepoint", "label", "is_anomaly", "anomaly_label")
ANOMALY_COLUMNS = ("anomaly", "is_anomaly", "label", "anomaly_label")  # flags, not changepoints
_LOGGED_BAD_ROWS = 5


class ReplayError(IotwatchError):
    """A recording that cannot be replayed (missing, empty, no value column)."""


@dataclass(frozen=True)
class Recording:
    """One CSV file's layout: where its time and value columns are, what they become."""

    path: Path
    device: str
    delimiter: str
    time_column: int
    value_columns: tuple[int, ...]
    metrics: tuple[str, ...]
    anomaly_column: int | None = None


def find_files(path: Path) -> list[Path]:
    """The CSV file itself, or every ``*.csv`` under a directory in natural order."""
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(path.rglob("*.csv"), key=lambda p: _natural(p.relative_to(path)))
        if files:
            return files
        raise ReplayError(f"{path}: no .csv files to replay")
    raise ReplayError(f"{path}: no such file or directory")


def describe(files: list[Path], root: Path, metric: str | None = None) -> list[Recording]:
    """Read each header and decide what each column becomes."""
    devices = [safe_segment(f.stem) for f in files]
    if len(set(devices)) < len(devices):
        base = root if root.is_dir() else root.parent
        devices = [safe_segment("-".join(f.relative_to(base).with_suffix("").parts))
                   for f in files]
    return [_layout(f, device, metric) for f, device in zip(files, devices, strict=True)]


def _layout(path: Path, device: str, metric: str | None) -> Recording:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header_line = handle.readline()
    except OSError as exc:
        raise ReplayError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ReplayError(_not_text(path, exc)) from None
    if not header_line.strip():
        raise ReplayError(f"{path}: empty file (expected a header such as timestamp,value)")
    delimiter = ";" if ";" in header_line else ","
    names = [c.strip() for c in next(csv.reader([header_line], delimiter=delimiter))]
    lowered = [n.lower() for n in names]
    time_column = next((i for i, n in enumerate(lowered) if n in TIME_COLUMNS), 0)
    value_columns = tuple(i for i, n in enumerate(lowered)
                          if i != time_column and n not in LABEL_COLUMNS and n)
    if not value_columns:
        raise ReplayError(f"{path}: no value column in header {names} (expected a time "
                          "column and at least one value column)")
    metrics = tuple(safe_segment(names[i]) for i in value_columns)
    if metric is not None:
        if len(metrics) != 1:
            raise ReplayError(f"{path}: --metric names the one value column, but this file "
                              f"has {len(metrics)}: {', '.join(metrics)}")
        metrics = (safe_segment(metric),)
    duplicates = sorted({m for m in metrics if metrics.count(m) > 1})
    if duplicates:
        raise ReplayError(f"{path}: columns {', '.join(duplicates)} become the same metric")
    anomaly_column = next((i for i, n in enumerate(lowered) if n in ANOMALY_COLUMNS), None)
    return Recording(path, device, delimiter, time_column, value_columns, metrics,
                     anomaly_column)


class Replay:
    """Every row of every file as samples, merged by each file's own clock."""

    def __init__(self, path: str | Path, site: str, metric: str | None = None,
                 count: int | None = None, duration_s: float | None = None,
                 windows: dict[str, list[tuple[float, float]]] | None = None) -> None:
        root = Path(path)
        self.site = safe_segment(site)
        self.recordings = describe(find_files(root), root, metric)
        self.count = count
        self.duration_s = duration_s
        self.rows = 0
        self.skipped = 0
        self._stopped = False
        self._labels: list[FaultLabel] = []
        # Per file: (start, end) windows not handed out yet, and the last timestamp sent.
        self._windows = {r.path: sorted(_windows_of(r.path, windows or {}))
                         for r in self.recordings}
        self._open_runs: dict[Path, tuple[float, float]] = {}
        self._last_ts: dict[Path, float] = {}

    def __iter__(self) -> Iterator[Sample]:
        streams = [self._samples(r) for r in self.recordings]
        for sample in heapq.merge(*streams, key=lambda s: s.offset_s):
            if self._stopped:
                return
            yield sample

    def stop(self) -> None:
        """End the replay here (rows already read ahead are not sent)."""
        self._stopped = True

    def take_labels(self) -> list[FaultLabel]:
        """The labels whose end the replay has passed, once each."""
        taken, self._labels = self._labels, []
        return taken

    def finish(self) -> list[FaultLabel]:
        """The labels still open, cut at the last row sent of their file."""
        for recording in self.recordings:
            last = self._last_ts.get(recording.path)
            run = self._open_runs.pop(recording.path, None)
            if run is not None:
                self._label(recording, run[0], run[1], "anomaly column")
            for start, end in self._windows.get(recording.path, []):
                if last is not None and start <= last:
                    self._label(recording, start, min(end, last), "windows")
            self._windows[recording.path] = []
        return self.take_labels()

    def _label(self, recording: Recording, start: float, end: float, how: str) -> None:
        for metric in recording.metrics:
            self._labels.append(FaultLabel(self.site, recording.device, metric, "recorded",
                                           start, end, {"from": how},
                                           f"replay:{recording.path.name}"))

    def _track_labels(self, recording: Recording, ts: float, flagged: bool) -> None:
        path = recording.path
        self._last_ts[path] = ts
        run = self._open_runs.get(path)
        if flagged:
            self._open_runs[path] = (ts if run is None else run[0], ts)
        elif run is not None:
            del self._open_runs[path]
            self._label(recording, run[0], run[1], "anomaly column")
        pending = self._windows.get(path)
        while pending and pending[0][1] < ts:
            start, end = pending.pop(0)
            self._label(recording, start, end, "windows")

    def _samples(self, recording: Recording) -> Iterator[Sample]:
        first: float | None = None
        offset = 0.0
        row_index = 0
        with recording.path.open(newline="", encoding="utf-8-sig") as handle:
            reader = _text_rows(csv.reader(handle, delimiter=recording.delimiter),
                                recording.path)
            next(reader, None)
            for line, row in enumerate(reader, start=2):
                if not row or not any(cell.strip() for cell in row):
                    continue
                if self.count is not None and row_index >= self.count:
                    return
                parsed = self._parse(recording, row, f"{recording.path}:{line}")
                if parsed is None:
                    continue
                ts, values, flagged = parsed
                if first is None:
                    first = ts
                # Pacing never goes back: a timestamp out of order is sent at once.
                offset = max(offset, ts - first)
                if self.duration_s is not None and offset >= self.duration_s:
                    return
                self.rows += 1
                self._track_labels(recording, ts, flagged)
                for metric, value in zip(recording.metrics, values, strict=True):
                    yield Sample(self.site, recording.device, metric, ts, offset, value,
                                 row_index)
                row_index += 1

    def _parse(self, recording: Recording, row: list[str],
               where: str) -> tuple[float, list[float], bool] | None:
        try:
            ts = parse_timestamp(row[recording.time_column])
            values = [float(row[i]) for i in recording.value_columns]
            flagged = recording.anomaly_column is not None and _flag(
                row[recording.anomaly_column])
        except (IndexError, ValueError, TimestampError) as exc:
            self._skip(where, f"{exc}" if not isinstance(exc, IndexError)
                       else f"expected {max(recording.value_columns) + 1} columns, got {len(row)}")
            return None
        if not all(math.isfinite(v) for v in values):
            self._skip(where, "value is not a finite number")
            return None
        return ts, values, flagged

    def _skip(self, where: str, why: str) -> None:
        self.skipped += 1
        if self.skipped <= _LOGGED_BAD_ROWS:
            log.warning("%s: row skipped: %s", where, why)
        elif self.skipped == _LOGGED_BAD_ROWS + 1:
            log.warning("more rows skipped; the summary counts them")


def _flag(cell: str) -> bool:
    text = cell.strip().lower()
    if text in ("", "0", "0.0", "false", "no"):
        return False
    if text in ("true", "yes"):
        return True
    return float(text) > 0.5  # a ValueError skips the row, as a bad value does


def _windows_of(path: Path, windows: dict[str, list[tuple[float, float]]]
                ) -> list[tuple[float, float]]:
    """The windows whose key is the end of ``path`` (``realKnownCause/x.csv``)."""
    parts = path.parts
    for key, items in windows.items():
        wanted = Path(key).parts
        if wanted and tuple(parts[-len(wanted):]) == wanted:
            return list(items)
    return []


def read_windows(path: Path) -> dict[str, list[tuple[float, float]]]:
    """NAB label windows (``combined_windows.json``) as epoch seconds."""
    import orjson

    try:
        raw = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ReplayError(f"{path}: cannot read: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise ReplayError(f"{path}: not JSON ({exc}); expected NAB windows "
                          '{"<category>/<name>.csv": [[start, end], ...]}') from None
    if not isinstance(raw, dict):
        raise ReplayError(f"{path}: expected NAB windows "
                          '{"<category>/<name>.csv": [[start, end], ...]}')
    windows = {}
    for key, items in raw.items():
        try:
            windows[str(key)] = [(parse_timestamp(a), parse_timestamp(b)) for a, b in items]
        except (TypeError, ValueError, TimestampError) as exc:
            raise ReplayError(f"{path}: {key!r}: expected [[start, end], ...] with "
                              f"timestamps ({exc})") from None
    return windows


def _text_rows(reader: Iterator[list[str]], path: Path) -> Iterator[list[str]]:
    try:
        yield from reader
    except UnicodeDecodeError as exc:
        raise ReplayError(_not_text(path, exc)) from None


def _not_text(path: Path, exc: UnicodeDecodeError) -> str:
    return (f"{path}: not a text file (byte 0x{exc.object[exc.start]:02x} is not UTF-8); "
            "expected a CSV recording with a header such as timestamp,value")


def _natural(path: Path) -> list[object]:
    return [int(part) if part.isdigit() else part
            for part in re.split(r"(\d+)", path.as_posix())]
