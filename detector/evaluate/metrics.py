"""Point-wise and event-wise detection metrics, counted after each file's warm-up rows.

- **Point-wise**: every scored row is a true/false positive/negative by comparing the
  detector's anomaly flag with the label (1 inside a labelled window).
- **Event-wise**: an *alarm* is a run of consecutive flagged rows (or an alert from
  firing to resolve). A window is *detected* when an alarm overlaps it; an alarm is
  *true* when it overlaps a window. Event recall = detected / windows, event
  precision = true alarms / alarms. The *detection delay* of a detected window is the
  time from its first scored row to the first flagged row inside it. *False alarms per
  day* divides the false alarms by the scored duration.

>>> import numpy as np
>>> labels = np.array([0, 0, 1, 1, 0, 0])
>>> flags = np.array([0, 1, 0, 1, 1, 0], dtype=bool)
>>> counts = point_counts(labels, flags, start=0)
>>> counts.f1, counts.far, counts.mar
(0.4, 0.5, 0.5)
>>> ts = np.arange(6) * 3600.0
>>> stats = event_stats(ts, [(2, 3)], flag_runs(flags), start=0)
>>> stats.recall, stats.precision, stats.delays_s
(1.0, 0.5, (3600.0,))
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

SECONDS_PER_DAY = 86400.0


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


@dataclass(frozen=True)
class PointCounts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def precision(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        """``TP / (TP + (FP + FN) / 2)``: SKAB's leaderboard form, the usual point F1."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def far(self) -> float | None:
        """False alarm rate ``FP / (FP + TN)``: the share of normal rows flagged."""
        return _ratio(self.fp, self.fp + self.tn)

    @property
    def mar(self) -> float | None:
        """Missed alarm rate ``FN / (FN + TP)``: the share of anomalous rows not flagged."""
        return _ratio(self.fn, self.fn + self.tp)

    def __add__(self, other: PointCounts) -> PointCounts:
        return PointCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn,
                           self.tn + other.tn)

    def as_dict(self) -> dict:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1,
                "far": self.far, "mar": self.mar, "tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn}


def point_counts(labels: np.ndarray, flags: np.ndarray, start: int) -> PointCounts:
    """Confusion counts of ``flags`` against ``labels`` over rows ``start..``."""
    truth = np.asarray(labels[start:], dtype=bool)
    pred = np.asarray(flags[start:], dtype=bool)
    return PointCounts(tp=int(np.sum(truth & pred)), fp=int(np.sum(~truth & pred)),
                       fn=int(np.sum(truth & ~pred)), tn=int(np.sum(~truth & ~pred)))


@dataclass(frozen=True)
class EventStats:
    windows: int = 0
    detected: int = 0
    alarms: int = 0
    true_alarms: int = 0
    delays_s: tuple[float, ...] = ()
    delays_rows: tuple[int, ...] = ()
    scored_seconds: float = 0.0
    detected_by_kind: tuple[tuple[str, int, int], ...] = ()  # (kind, windows, detected)

    @property
    def false_alarms(self) -> int:
        return self.alarms - self.true_alarms

    @property
    def recall(self) -> float | None:
        return _ratio(self.detected, self.windows)

    @property
    def precision(self) -> float | None:
        return _ratio(self.true_alarms, self.alarms)

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        return None if p is None or r is None else (2 * p * r / (p + r) if p + r else 0.0)

    @property
    def false_alarms_per_day(self) -> float | None:
        return _ratio(self.false_alarms * SECONDS_PER_DAY, self.scored_seconds)

    @property
    def delay_s_median(self) -> float | None:
        return statistics.median(self.delays_s) if self.delays_s else None

    @property
    def delay_s_mean(self) -> float | None:
        return statistics.fmean(self.delays_s) if self.delays_s else None

    @property
    def delay_rows_median(self) -> float | None:
        return statistics.median(self.delays_rows) if self.delays_rows else None

    def __add__(self, other: EventStats) -> EventStats:
        kinds: dict[str, list[int]] = {}
        for kind, windows, detected in (*self.detected_by_kind, *other.detected_by_kind):
            counts = kinds.setdefault(kind, [0, 0])
            counts[0] += windows
            counts[1] += detected
        return EventStats(
            self.windows + other.windows, self.detected + other.detected,
            self.alarms + other.alarms, self.true_alarms + other.true_alarms,
            self.delays_s + other.delays_s, self.delays_rows + other.delays_rows,
            self.scored_seconds + other.scored_seconds,
            tuple((k, w, d) for k, (w, d) in sorted(kinds.items())))

    def as_dict(self) -> dict:
        out = {"windows": self.windows, "detected": self.detected, "recall": self.recall,
               "alarms": self.alarms, "true_alarms": self.true_alarms,
               "false_alarms": self.false_alarms, "precision": self.precision, "f1": self.f1,
               "false_alarms_per_day": self.false_alarms_per_day,
               "delay_median": duration(self.delay_s_median),
               "delay_s_median": self.delay_s_median, "delay_s_mean": self.delay_s_mean,
               "delay_rows_median": self.delay_rows_median,
               "scored_days": self.scored_seconds / SECONDS_PER_DAY}
        if any(kind for kind, _, _ in self.detected_by_kind):
            out["recall_by_kind"] = {kind or "(none)": _ratio(d, w)
                                     for kind, w, d in self.detected_by_kind}
        return out


def duration(seconds: float | None) -> str:
    """A delay in human units, the one form the table, the JSON and the report use.

    >>> duration(45.0), duration(37800.0), duration(43800.0), duration(None)
    ('45s', '10.5h', '12.2h', '-')
    """
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def flag_runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """Runs of consecutive true flags as ``(first, last)`` rows.

    >>> flag_runs(np.array([1, 1, 0, 0, 1], dtype=bool))
    [(0, 1), (4, 4)]
    """
    padded = np.concatenate(([False], np.asarray(flags, dtype=bool), [False]))
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def alert_intervals(fired: Sequence[int], resolved: Sequence[int], rows: int
                    ) -> list[tuple[int, int]]:
    """Alerts as ``(fired row, resolved row)``; one still firing at the end runs to the last row.

    >>> alert_intervals([3, 10], [6], rows=12)
    [(3, 6), (10, 11)]
    """
    ends = sorted(resolved)
    intervals = []
    for first in sorted(fired):
        end = next((e for e in ends if e >= first), None)
        if end is not None:
            ends.remove(end)
        intervals.append((first, rows - 1 if end is None else end))
    return intervals


def event_stats(timestamps: np.ndarray, spans: Iterable[tuple[int, int] | object],
                alarms: Sequence[tuple[int, int]], start: int,
                kinds: Sequence[str] | None = None) -> EventStats:
    """Event metrics for one file: ``spans`` are labelled windows as rows (first, last)."""
    rows = len(timestamps)
    windows = [_as_pair(s) for s in spans]
    kinds = list(kinds) if kinds is not None else [getattr(s, "kind", "") for s in spans]
    alarms = [(max(a, start), b) for a, b in alarms if b >= start]
    scored = [(max(a, start), b, kind) for (a, b), kind in zip(windows, kinds, strict=True)
              if b >= start]
    delays_s: list[float] = []
    delays_rows: list[int] = []
    by_kind: dict[str, list[int]] = {}
    detected = 0
    for first, last, kind in scored:
        hits = [max(a, first) for a, b in alarms if a <= last and b >= first]
        counts = by_kind.setdefault(kind, [0, 0])
        counts[0] += 1
        if hits:
            detected += 1
            counts[1] += 1
            hit = min(hits)
            delays_rows.append(hit - first)
            delays_s.append(float(timestamps[hit] - timestamps[first]))
    true_alarms = sum(1 for a, b in alarms
                      if any(a <= last and b >= first for first, last in windows))
    scored_seconds = float(timestamps[-1] - timestamps[start]) if start < rows else 0.0
    return EventStats(len(scored), detected, len(alarms), true_alarms, tuple(delays_s),
                      tuple(delays_rows), max(scored_seconds, 0.0),
                      tuple((k, w, d) for k, (w, d) in sorted(by_kind.items())))


def _as_pair(span: object) -> tuple[int, int]:
    if isinstance(span, tuple):
        return int(span[0]), int(span[1])
    return int(span.first), int(span.last)  # type: ignore[attr-defined]
