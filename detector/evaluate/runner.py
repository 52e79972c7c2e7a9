"""Runs a detector over labelled series strictly online, one engine per file, files in parallel.

Each reading is scored before it is learned, in file order, by the same
:class:`detector.engine.Engine` the detector service runs. A multi-metric series (SKAB)
feeds every metric to its own stream and the whole row to the per-device multivariate
detector; the file's score on a row is the highest of them.

The engine's decision on a row (``flags``, the results' ``anomaly`` column) is whether
the stream, or for a device any of its streams or the device detector, is in an alert
state after that reading: from the row whose reading fired an alert to the row before
the one that resolved it, i.e. what a user of the detector service would see. An
*alarm* is a run of such rows, so the number of alarms is the number of alerts a user
saw (alerts of a device's streams that overlap count once).

The ``random`` baseline is NAB's: uniform scores from a generator that every file
restarts from the same seed (so ``--seed 42`` reproduces NAB's random detector, about
28 on the 18-file subset); it flags the top 1% (score >= 0.99).
"""

from __future__ import annotations

import multiprocessing
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from queue import Empty
from typing import Any

import numpy as np

from detector.evaluate.datasets import Series
from detector.evaluate.progress import Progress

RANDOM = "random"
DEFAULT_NAME = "iotwatch"
RANDOM_FLAG_AT = 0.99
DEVICE_STREAM = "device"
_REPORT_EVERY = 2000


@dataclass(frozen=True)
class DetectorSpec:
    """What to evaluate: a display name and engine settings (None for the random baseline)."""

    name: str
    settings: Any | None  # detector.engine.EngineSettings
    seed: int = 42
    model: Any | None = None  # detector.models.evaluation.ModelPlan: a trained model runs


@dataclass
class Scored:
    """The detector's output for one series, row-aligned with it."""

    key: str
    scores: np.ndarray        # anomaly_score in [0, 1]
    flags: np.ndarray         # bool: the detector's decision (the engine: in an alert state)
    thresholds: np.ndarray    # the threshold each decision used (nan if none)
    alerts: list[tuple[int, int, str]] = field(default_factory=list)  # (fired, resolved, stream)
    trigger: list[str] | None = None  # multivariate: the stream that gave each row's score
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    seconds: float = 0.0      # time spent in the detector
    readings: int = 0         # values scored (a SKAB row is 8 readings)
    alerting: bool = False    # produced by the engine, so ``alerts`` is meaningful


def score_series(spec: DetectorSpec, series: Series,
                 report: Callable[[int], None] | None = None) -> Scored:
    """Score every row of ``series`` with a fresh detector built from ``spec``."""
    report = report or _worker_report
    if spec.settings is None:
        scored = _score_random(spec, series)
        report(series.rows)
        return scored
    from detector.engine import Engine

    settings, device_only = spec.settings, False
    if spec.model is not None:
        from detector.models.evaluation import engine_settings

        settings, device_only = engine_settings(spec.model, series, settings)
    engine = Engine(settings)
    if series.multivariate:
        return _score_device(engine, series, report, streams=not device_only)
    return _score_stream(engine, series, report)


def run_all(spec: DetectorSpec, series: Sequence[Series], jobs: int = 1,
            progress: Progress | None = None) -> list[Scored]:
    """Score every series (``jobs`` processes when > 1); results in the order of ``series``."""
    results: dict[str, Scored] = {}
    advance = progress.advance if progress else (lambda rows=0, files=0: None)
    if jobs <= 1 or len(series) <= 1:
        for item in series:
            results[item.key] = score_series(spec, item, lambda rows: advance(rows=rows))
            advance(files=1)
    else:
        context = multiprocessing.get_context()
        queue = context.Queue()
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context,
                                 initializer=_init_worker, initargs=(queue,)) as pool:
            # Longest first, so one big file does not finish alone at the end.
            ordered = sorted(series, key=lambda s: -s.rows * len(s.metrics))
            pending = {pool.submit(score_series, spec, item) for item in ordered}
            while pending:
                done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                advance(rows=_drain(queue))
                for future in done:
                    scored = future.result()
                    results[scored.key] = scored
                    advance(files=1)
            advance(rows=_drain(queue))
    return [results[item.key] for item in series]


# ---------------------------------------------------------------------------
# Scoring loops
# ---------------------------------------------------------------------------


def _score_stream(engine: Any, series: Series, report: Callable[[int], None]) -> Scored:
    site, device, metric = series.site, series.device, series.metrics[0]
    rows = series.rows
    scores = np.empty(rows)
    thresholds = np.empty(rows)
    events: list[tuple[int, Any]] = []
    timestamps = series.timestamps.tolist()
    values = series.values[:, 0].tolist()
    process = engine.process
    seconds = 0.0
    for begin in range(0, rows, _REPORT_EVERY):
        end = min(begin + _REPORT_EVERY, rows)
        started = time.perf_counter()
        outcomes = [process(site, device, metric, timestamps[i], values[i])
                    for i in range(begin, end)]
        seconds += time.perf_counter() - started
        for i, outcome in enumerate(outcomes, start=begin):
            scores[i] = outcome.score
            thresholds[i] = outcome.threshold
            if outcome.event is not None:
                events.append((i, outcome.event))
        report(end - begin)
    alerts = _alerts(events, metric, rows)
    return Scored(series.key, scores, alert_state(alerts, rows), thresholds, alerts,
                  seconds=seconds, readings=rows, alerting=True)


def _score_device(engine: Any, series: Series, report: Callable[[int], None],
                  streams: bool = True) -> Scored:
    site, device, metrics = series.site, series.device, series.metrics
    rows, width = series.rows, len(metrics)
    stream_scores = np.zeros((rows, width))
    device_scores = np.zeros(rows)
    thresholds = np.full(rows, np.nan)
    events: dict[str, list[tuple[int, Any]]] = {m: [] for m in (*metrics, DEVICE_STREAM)}
    timestamps = series.timestamps.tolist()
    values = series.values.tolist()
    process, process_device = engine.process, engine.process_device
    seconds = 0.0
    for begin in range(0, rows, _REPORT_EVERY):
        end = min(begin + _REPORT_EVERY, rows)
        started = time.perf_counter()
        outcomes = []
        for i in range(begin, end):
            ts, row = timestamps[i], values[i]
            per_metric = [process(site, device, m, ts, v) for m, v in zip(metrics, row, strict=True)
                          ] if streams else []
            outcomes.append((per_metric, process_device(site, device, ts, dict(zip(metrics, row, strict=True)))))
        seconds += time.perf_counter() - started
        for i, (per_metric, whole) in enumerate(outcomes, start=begin):
            for j, outcome in enumerate(per_metric):
                stream_scores[i, j] = outcome.score
                if outcome.event is not None:
                    events[metrics[j]].append((i, outcome.event))
            if per_metric:
                thresholds[i] = per_metric[0].threshold
            if whole is not None:
                thresholds[i] = whole.threshold if not per_metric else thresholds[i]
                device_scores[i] = whole.score
                if whole.event is not None:
                    events[DEVICE_STREAM].append((i, whole.event))
        report(end - begin)
    streams_score = stream_scores.max(axis=1)
    scores = np.maximum(streams_score, device_scores)
    found = {stream: _alerts(items, stream, rows) for stream, items in events.items()}
    streams_flag = alert_state([a for m in metrics for a in found[m]], rows)
    device_flags = alert_state(found[DEVICE_STREAM], rows)
    flags = streams_flag | device_flags
    best = stream_scores.argmax(axis=1)
    trigger = [DEVICE_STREAM if device_scores[i] > streams_score[i] else metrics[best[i]]
               for i in range(rows)]
    alerts = [a for items in found.values() for a in items]
    return Scored(series.key, scores, flags, thresholds, sorted(alerts), trigger,
                  {"streams": (streams_score, streams_flag),
                   "device": (device_scores, device_flags)},
                  seconds=seconds, readings=rows * width, alerting=True)


def _score_random(spec: DetectorSpec, series: Series) -> Scored:
    started = time.perf_counter()
    draw = random.Random(spec.seed).random
    scores = np.array([draw() for _ in range(series.rows)])
    seconds = time.perf_counter() - started
    return Scored(series.key, scores, scores >= RANDOM_FLAG_AT,
                  np.full(series.rows, RANDOM_FLAG_AT), seconds=seconds,
                  readings=series.rows * len(series.metrics))


def alert_state(alerts: Sequence[tuple[int, int, str]], rows: int) -> np.ndarray:
    """Rows in an alert state: from each fired row to the row before its resolve.

    An alert still firing at the end (its "resolved" row is the last row) covers it too.

    >>> alert_state([(1, 3, "t"), (6, 9, "t")], rows=10).astype(int).tolist()
    [0, 1, 1, 0, 0, 0, 1, 1, 1, 1]
    """
    flags = np.zeros(rows, dtype=bool)
    for fired, resolved, _ in alerts:
        flags[fired:resolved if resolved < rows - 1 else rows] = True
    return flags


def _alerts(events: list[tuple[int, Any]], stream: str, rows: int) -> list[tuple[int, int, str]]:
    """Pair firing and resolved events into (fired row, resolved row, stream)."""
    alerts: list[tuple[int, int, str]] = []
    fired: int | None = None
    for row, event in events:
        state = str(getattr(event, "state", "")).lower()
        if state.endswith("firing") and fired is None:
            fired = row
        elif state.endswith("resolved") and fired is not None:
            alerts.append((fired, row, stream))
            fired = None
    if fired is not None:
        alerts.append((fired, rows - 1, stream))
    return alerts


# ---------------------------------------------------------------------------
# Worker processes report rows done through a queue so the bar moves mid-file.
# ---------------------------------------------------------------------------

_queue: Any = None


def _init_worker(queue: Any) -> None:
    global _queue
    _queue = queue


def _worker_report(rows: int) -> None:
    if _queue is not None:
        _queue.put(rows)


def _drain(queue: Any) -> int:
    rows = 0
    while True:
        try:
            rows += queue.get_nowait()
        except Empty:
            return rows
