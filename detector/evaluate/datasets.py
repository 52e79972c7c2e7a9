"""Labelled recordings for offline evaluation: NAB, SKAB and the publisher's output.

Every loader returns a list of :class:`Series`, one per evaluated file (or stream),
rows in file order: NAB files repeat timestamps and once go backwards, and the
stream order is the row order, exactly as a detector would have seen it live.

- **nab**: ``<category>/<name>.csv`` with ``timestamp,value`` and a labels JSON
  ``{"<category>/<name>.csv": [[start, end], ...]}`` (NAB's ``combined_windows.json``).
  Only files named in the labels are evaluated (NAB's rule). Timestamps without a
  zone are UTC.
- **skab**: semicolon CSV ``datetime;<8 sensors>;anomaly;changepoint``; the sensors are
  metrics of one device, windows are the runs of ``anomaly == 1``, and the first 400
  rows are SKAB's training part (not counted by point and event metrics).
- **iotwatch**: the publisher's ``readings.csv`` (``ts,site,device,metric,value``) and
  ``labels.jsonl`` (one fault a line: ``site, device, metric, kind, start, end``);
  each stream (site, device, metric) is evaluated as its own series.

>>> import numpy as np
>>> spans_from_windows(np.array([0., 60., 120., 180.]), [(60., 120., "spike")])
(Span(first=1, last=2, kind='spike'),)
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.evaluate.nab import probation_rows
from iotwatch import IotwatchError
from iotwatch.timeparse import TimestampError, parse_timestamp

FORMATS = ("nab", "skab", "iotwatch")
SKAB_TRAINING_ROWS = 400
SKAB_LABEL_COLUMNS = ("anomaly", "changepoint")
NAB_LABEL_NAMES = ("combined_windows.json", "combined_windows_subset.json")
IOTWATCH_READINGS = "readings.csv"
IOTWATCH_LABELS = "labels.jsonl"

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class DatasetError(IotwatchError):
    """A data directory or labels file that cannot be evaluated; says what and where."""


@dataclass(frozen=True)
class Span:
    """A labelled window as row indices ``first..last`` (inclusive)."""

    first: int
    last: int
    kind: str = ""


@dataclass(frozen=True, eq=False)
class Series:
    """One evaluated file: rows in file order, one or more metrics of one device."""

    category: str            # results sub-directory (NAB category, SKAB folder, site)
    name: str                # file stem, e.g. "nyc_taxi"
    site: str
    device: str
    metrics: tuple[str, ...]  # stream names given to the engine
    timestamps: np.ndarray   # float64 epoch seconds
    values: np.ndarray       # float64, shape (rows, len(metrics))
    spans: tuple[Span, ...]
    warmup_rows: int         # leading rows not counted by point and event metrics
    source: str = ""         # relative path of the input, e.g. "realKnownCause/nyc_taxi.csv"
    columns: tuple[str, ...] = ()  # metric names as written in the input
    stamps: tuple[str, ...] = ()   # timestamps as written in the input (for the results files)
    labelled: bool = True    # False: a file with no label column (SKAB's anomaly-free.csv)

    @property
    def rows(self) -> int:
        return len(self.timestamps)

    @property
    def key(self) -> str:
        return f"{self.category}/{self.name}"

    @property
    def multivariate(self) -> bool:
        return len(self.metrics) > 1

    def labels(self) -> np.ndarray:
        """1 for rows inside a labelled window, else 0."""
        labels = np.zeros(self.rows, dtype=np.int8)
        for span in self.spans:
            labels[span.first:span.last + 1] = 1
        return labels


def safe_name(text: str) -> str:
    """A stream or file name usable as a topic segment: ``Volume Flow RateRMS`` -> ``Volume_Flow_RateRMS``."""
    return _UNSAFE.sub("_", text.strip())[:64] or "_"


def detect_format(data_dir: Path) -> str:
    """Guess the format of ``data_dir`` from its files; raise DatasetError if unsure."""
    if not data_dir.is_dir():
        raise DatasetError(f"{data_dir}: not a directory")
    if (data_dir / IOTWATCH_READINGS).is_file():
        return "iotwatch"
    for path in sorted(data_dir.rglob("*.csv")):
        header = _first_line(path)
        if ";" in header:
            return "skab"
        fields = [f.strip().lower() for f in header.split(",")]
        if fields[:2] == ["timestamp", "value"]:
            return "nab"
    raise DatasetError(
        f"{data_dir}: cannot tell the format (expected {IOTWATCH_READINGS}, NAB "
        "'<category>/<name>.csv' files with a 'timestamp,value' header, or SKAB "
        "semicolon CSV files); pass --format nab|skab|iotwatch")


def default_labels(data_dir: Path, fmt: str) -> Path | None:
    """Where the labels of ``data_dir`` are when no --labels is given (None for SKAB)."""
    if fmt == "skab":
        return None
    if fmt == "iotwatch":
        return data_dir / IOTWATCH_LABELS
    for folder in (data_dir, data_dir / "labels", data_dir.parent / "labels"):
        for name in NAB_LABEL_NAMES:
            if (folder / name).is_file():
                return folder / name
    return None


def load(data_dir: Path, fmt: str, labels: Path | None) -> list[Series]:
    """Load every series of ``data_dir`` in format ``fmt`` (see the module docstring)."""
    if fmt == "nab":
        if labels is None:
            raise DatasetError(
                f"{data_dir}: NAB data needs a labels file; pass --labels FILE "
                f"(NAB's {NAB_LABEL_NAMES[0]})")
        return load_nab(data_dir, labels)
    if fmt == "skab":
        if labels is not None:
            raise DatasetError("SKAB files carry their labels in the 'anomaly' column; "
                               "--labels is not used with --format skab")
        return load_skab(data_dir)
    if fmt == "iotwatch":
        return load_iotwatch(data_dir, labels or data_dir / IOTWATCH_LABELS)
    raise DatasetError(f"unknown format {fmt!r} (expected one of: {', '.join(FORMATS)})")


# ---------------------------------------------------------------------------
# NAB
# ---------------------------------------------------------------------------


def load_nab(data_dir: Path, labels_path: Path) -> list[Series]:
    windows_by_file = _read_nab_labels(labels_path)
    missing = [rel for rel in windows_by_file if not (data_dir / rel).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DatasetError(f"{labels_path}: {len(missing)} labelled file(s) not found under "
                           f"{data_dir}: {shown}")
    series = []
    for rel, windows in windows_by_file.items():
        path = data_dir / rel
        stamps, timestamps, values = _read_nab_csv(path)
        category = Path(rel).parent.as_posix() or "."
        name = Path(rel).stem
        spans = spans_from_windows(timestamps, [(s, e, "") for s, e in windows])
        series.append(Series(
            category=category, name=name, site=safe_name(category), device=safe_name(name),
            metrics=("value",), timestamps=timestamps, values=values.reshape(-1, 1),
            spans=spans, warmup_rows=probation_rows(len(timestamps)), source=rel,
            columns=("value",), stamps=stamps))
    return series


def _read_nab_labels(path: Path) -> dict[str, list[tuple[float, float]]]:
    raw = _read_json(path)
    if not isinstance(raw, dict):
        raise DatasetError(f"{path}: expected a JSON object "
                           '{"<category>/<name>.csv": [[start, end], ...]}')
    windows: dict[str, list[tuple[float, float]]] = {}
    for rel, items in raw.items():
        where = f"{path}: {rel!r}"
        if not isinstance(items, list):
            raise DatasetError(f"{where}: expected a list of [start, end] windows")
        parsed = []
        for item in items:
            if not (isinstance(item, list) and len(item) == 2):
                raise DatasetError(f"{where}: expected [start, end], got {item!r}")
            start, end = (_timestamp(v, where) for v in item)
            if end < start:
                raise DatasetError(f"{where}: window {item!r} ends before it starts")
            parsed.append((start, end))
        windows[rel] = sorted(parsed)
    return windows


def _read_nab_csv(path: Path) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    stamps: list[str] = []
    timestamps: list[float] = []
    values: list[float] = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = [h.strip().lower() for h in next(reader, [])]
        if "timestamp" not in header or "value" not in header:
            raise DatasetError(f"{path}: expected a 'timestamp,value' header, got {header}")
        ts_col, value_col = header.index("timestamp"), header.index("value")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            where = f"{path}:{line}"
            stamps.append(_cell(row, ts_col, where))
            timestamps.append(_timestamp(stamps[-1], where))
            values.append(_number(_cell(row, value_col, where), where))
    if not timestamps:
        raise DatasetError(f"{path}: no rows")
    return tuple(stamps), np.array(timestamps), np.array(values)


# ---------------------------------------------------------------------------
# SKAB
# ---------------------------------------------------------------------------


def load_skab(data_dir: Path) -> list[Series]:
    paths = sorted(data_dir.rglob("*.csv"), key=lambda p: _natural_key(p.relative_to(data_dir)))
    if not paths:
        raise DatasetError(f"{data_dir}: no SKAB .csv files found")
    return [_read_skab_csv(path, path.relative_to(data_dir)) for path in paths]


def _read_skab_csv(path: Path, rel: Path) -> Series:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter=";")
        header = [h.strip() for h in next(reader, [])]
        if len(header) < 2:
            raise DatasetError(f"{path}: expected a semicolon-separated header "
                               "'datetime;<sensors>;anomaly;changepoint'")
        metric_cols = [i for i, h in enumerate(header[1:], start=1)
                       if h.lower() not in SKAB_LABEL_COLUMNS]
        anomaly_col = next((i for i, h in enumerate(header) if h.lower() == "anomaly"), None)
        stamps: list[str] = []
        timestamps: list[float] = []
        rows: list[list[float]] = []
        anomaly: list[bool] = []
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            where = f"{path}:{line}"
            stamps.append(_cell(row, 0, where))
            timestamps.append(_timestamp(stamps[-1], where))
            rows.append([_number(_cell(row, i, where), where) for i in metric_cols])
            if anomaly_col is not None:
                anomaly.append(_number(_cell(row, anomaly_col, where), where) > 0.5)
    if not timestamps:
        raise DatasetError(f"{path}: no rows")
    columns = tuple(header[i] for i in metric_cols)
    category = rel.parent.as_posix() or "."
    name = rel.stem
    return Series(
        category=category, name=name, site=safe_name(category), device=safe_name(name),
        metrics=tuple(safe_name(c) for c in columns), timestamps=np.array(timestamps),
        values=np.array(rows, dtype=np.float64), spans=spans_from_flags(anomaly),
        warmup_rows=min(SKAB_TRAINING_ROWS, len(timestamps)), source=rel.as_posix(),
        columns=columns, stamps=tuple(stamps), labelled=anomaly_col is not None)


# ---------------------------------------------------------------------------
# iotwatch publisher output
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordingRow:
    """One row of a publisher recording (``readings.csv``)."""

    where: str        # file:line, for errors
    stamp: str        # the ts cell as written
    ts: float         # epoch seconds
    site: str
    device: str
    metric: str
    value: float


def recording_rows(path: Path) -> Iterator[RecordingRow]:
    """The rows of a publisher recording in file order; DatasetError names a bad one."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = [h.strip().lower() for h in next(reader, [])]
        expected = ["ts", "site", "device", "metric", "value"]
        if any(col not in header for col in expected):
            raise DatasetError(f"{path}: expected header {','.join(expected)}, got {header}")
        cols = [header.index(col) for col in expected]
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            where = f"{path}:{line}"
            ts, site, device, metric, value = (_cell(row, i, where) for i in cols)
            yield RecordingRow(where, ts, _timestamp(ts, where), site, device, metric,
                               _number(value, where))


def load_iotwatch(data_dir: Path, labels_path: Path) -> list[Series]:
    readings = data_dir / IOTWATCH_READINGS
    if not readings.is_file():
        raise DatasetError(f"{data_dir}: no {IOTWATCH_READINGS} (the publisher's recording)")
    if not labels_path.is_file():
        raise DatasetError(f"{labels_path}: labels file not found (the publisher writes "
                           f"{IOTWATCH_LABELS} next to {IOTWATCH_READINGS}; pass --labels FILE)")
    streams: dict[tuple[str, str, str], tuple[list[str], list[float], list[float]]] = {}
    for row in recording_rows(readings):
        stamps, times, values = streams.setdefault((row.site, row.device, row.metric),
                                                   ([], [], []))
        stamps.append(row.stamp)
        times.append(row.ts)
        values.append(row.value)
    faults = _read_iotwatch_labels(labels_path)
    series = []
    for (site, device, metric), (stamps, times, values) in streams.items():
        timestamps = np.array(times)
        windows = [(s, e, kind) for s, e, kind in faults.get((site, device, metric), [])]
        series.append(Series(
            category=site, name=f"{device}.{metric}", site=site, device=device,
            metrics=(metric,), timestamps=timestamps, values=np.array(values).reshape(-1, 1),
            spans=spans_from_windows(timestamps, windows),
            warmup_rows=probation_rows(len(timestamps)),
            source=f"{IOTWATCH_READINGS}#{site}/{device}/{metric}", columns=(metric,),
            stamps=tuple(stamps)))
    unknown = sorted(set(faults) - set(streams))
    if unknown:
        shown = ", ".join("/".join(k) for k in unknown[:5])
        raise DatasetError(f"{labels_path}: faults for streams with no readings: {shown}")
    return series


def _read_iotwatch_labels(path: Path) -> dict[tuple[str, str, str], list[tuple[float, float, str]]]:
    faults: dict[tuple[str, str, str], list[tuple[float, float, str]]] = {}
    with path.open(encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            where = f"{path}:{line}"
            try:
                item = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{where}: not valid JSON: {exc.msg}") from None
            missing = [k for k in ("site", "device", "metric", "start", "end")
                       if not isinstance(item, dict) or k not in item]
            if missing:
                raise DatasetError(f"{where}: missing key(s) {', '.join(missing)} (expected "
                                   "site, device, metric, kind, start, end)")
            start, end = _timestamp(item["start"], where), _timestamp(item["end"], where)
            if end < start:
                raise DatasetError(f"{where}: fault ends before it starts")
            key = (str(item["site"]), str(item["device"]), str(item["metric"]))
            faults.setdefault(key, []).append((start, end, str(item.get("kind", ""))))
    return faults


# ---------------------------------------------------------------------------
# Windows
# ---------------------------------------------------------------------------


def spans_from_windows(timestamps: np.ndarray,
                       windows: Iterable[tuple[float, float, str]]) -> tuple[Span, ...]:
    """Row spans of time windows: from the first row inside ``[start, end]`` on, while rows stay inside.

    A window with no row inside it (a dropout, say) has no span. Overlapping spans merge.
    """
    spans = []
    for start, end, kind in sorted(windows):
        inside = (timestamps >= start) & (timestamps <= end)
        hits = np.flatnonzero(inside)
        if not hits.size:
            continue
        first = int(hits[0])
        outside_after = np.flatnonzero(~inside[first:])
        last = first + int(outside_after[0]) - 1 if outside_after.size else len(timestamps) - 1
        spans.append(Span(first, last, kind))
    return merge_spans(spans)


def spans_from_flags(flags: Sequence[bool]) -> tuple[Span, ...]:
    """Row spans of the runs of true flags.

    >>> spans_from_flags([0, 1, 1, 0, 1])
    (Span(first=1, last=2, kind=''), Span(first=4, last=4, kind=''))
    """
    spans = []
    start = None
    for i, flag in enumerate(flags):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            spans.append(Span(start, i - 1))
            start = None
    if start is not None:
        spans.append(Span(start, len(flags) - 1))
    return tuple(spans)


def merge_spans(spans: Iterable[Span]) -> tuple[Span, ...]:
    merged: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.first, s.last)):
        if merged and span.first <= merged[-1].last + 1:
            prev = merged[-1]
            kind = prev.kind if prev.kind == span.kind or not span.kind else (
                f"{prev.kind}+{span.kind}" if prev.kind else span.kind)
            merged[-1] = Span(prev.first, max(prev.last, span.last), kind)
        else:
            merged.append(span)
    return tuple(merged)


# ---------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------


def _cell(row: list[str], index: int, where: str) -> str:
    if index >= len(row):
        raise DatasetError(f"{where}: expected at least {index + 1} columns, got {len(row)}")
    return row[index]


def _timestamp(text: object, where: str) -> float:
    try:
        return parse_timestamp(text)
    except TimestampError as exc:
        raise DatasetError(f"{where}: {exc}") from None


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DatasetError(f"{where}: expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise DatasetError(f"{where}: expected a finite number, got {text!r}")
    return value


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: labels file not found") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON: {exc.msg} (line {exc.lineno})") from None


def _first_line(path: Path) -> str:
    try:
        with path.open(encoding="utf-8") as handle:
            return handle.readline().strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _natural_key(path: Path) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.as_posix())]
