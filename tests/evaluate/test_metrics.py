"""Point-wise and event-wise metrics, checked against hand-counted cases."""

from __future__ import annotations

import numpy as np
import pytest

from detector.evaluate.datasets import Span
from detector.evaluate.metrics import (
    EventStats,
    PointCounts,
    alert_intervals,
    event_stats,
    flag_runs,
    point_counts,
)

HOUR = 3600.0


def flags_at(rows: int, *indices: int) -> np.ndarray:
    flags = np.zeros(rows, dtype=bool)
    flags[list(indices)] = True
    return flags


@pytest.mark.parametrize(("labels", "flags", "start", "expected"), [
    # tp fp fn tn
    ([0, 1, 1, 0], [0, 1, 0, 1], 0, (1, 1, 1, 1)),
    ([0, 1, 1, 0], [1, 1, 1, 0], 1, (2, 0, 0, 1)),      # row 0 is warm-up
    ([0, 0, 0, 0], [0, 0, 0, 0], 0, (0, 0, 0, 4)),
])
def test_point_counts(labels, flags, start, expected):
    counts = point_counts(np.array(labels), np.array(flags, dtype=bool), start)
    assert (counts.tp, counts.fp, counts.fn, counts.tn) == expected


def test_point_ratios_and_undefined_cases():
    counts = PointCounts(tp=3, fp=1, fn=2, tn=10)
    assert (counts.precision, counts.recall) == (0.75, 0.6)
    assert counts.f1 == pytest.approx(2 * 0.75 * 0.6 / (0.75 + 0.6))
    nothing = PointCounts(tn=5)
    assert (nothing.precision, nothing.recall, nothing.f1) == (None, None, None)
    assert (PointCounts(1, 0, 0, 0) + PointCounts(0, 1, 2, 3)) == PointCounts(1, 1, 2, 3)


def test_flag_runs_are_alarms():
    assert flag_runs(np.array([1, 0, 1, 1, 0, 0, 1], dtype=bool)) == [(0, 0), (2, 3), (6, 6)]
    assert flag_runs(np.zeros(3, dtype=bool)) == []


def test_event_recall_precision_delay_and_false_alarms_per_day():
    ts = np.arange(48) * HOUR                                  # two days, hourly
    windows = [Span(10, 15), Span(30, 35, "drift")]
    flags = flags_at(48, 12, 13, 20, 40, 41)                   # 1 true alarm, 2 false
    stats = event_stats(ts, windows, flag_runs(flags), start=0)
    assert (stats.windows, stats.detected, stats.alarms, stats.true_alarms) == (2, 1, 3, 1)
    assert stats.recall == 0.5 and stats.precision == pytest.approx(1 / 3)
    assert stats.delays_s == (2 * HOUR,) and stats.delays_rows == (2,)
    # 2 false alarms over 47 scored hours
    assert stats.false_alarms_per_day == pytest.approx(2 * 24 / 47)
    assert stats.as_dict()["recall_by_kind"] == {"(none)": 1.0, "drift": 0.0}


def test_alarm_running_into_a_window_detects_it_with_zero_delay():
    ts = np.arange(20) * 60.0
    flags = flags_at(20, 3, 4, 5, 6)                           # run 3..6 overlaps window 5..8
    stats = event_stats(ts, [Span(5, 8)], flag_runs(flags), start=0)
    assert (stats.detected, stats.true_alarms, stats.delays_s) == (1, 1, (0.0,))


def test_warm_up_rows_are_not_counted():
    ts = np.arange(20) * 60.0
    flags = flags_at(20, 1, 2, 12)
    stats = event_stats(ts, [Span(0, 3), Span(10, 14)], flag_runs(flags), start=5)
    # the first window and the alarm on rows 1..2 are inside the warm-up
    assert (stats.windows, stats.detected, stats.alarms) == (1, 1, 1)
    assert stats.scored_seconds == 14 * 60.0


def test_window_straddling_warm_up_measures_delay_from_first_scored_row():
    ts = np.arange(20) * 60.0
    stats = event_stats(ts, [Span(2, 9)], flag_runs(flags_at(20, 7)), start=5)
    assert stats.delays_rows == (2,)


def test_event_stats_add_up_over_files():
    a = EventStats(windows=2, detected=1, alarms=3, true_alarms=1, delays_s=(60.0,),
                   delays_rows=(1,), scored_seconds=86400.0,
                   detected_by_kind=(("spike", 2, 1),))
    b = EventStats(windows=1, detected=1, alarms=1, true_alarms=1, delays_s=(180.0,),
                   delays_rows=(3,), scored_seconds=86400.0,
                   detected_by_kind=(("spike", 1, 1),))
    total = a + b
    assert (total.windows, total.detected, total.alarms, total.true_alarms) == (3, 2, 4, 2)
    assert total.delay_s_median == 120.0 and total.false_alarms_per_day == 1.0
    assert total.detected_by_kind == (("spike", 3, 2),)


def test_alerts_pair_firing_with_the_next_resolve():
    assert alert_intervals([2, 9], [5, 12], rows=20) == [(2, 5), (9, 12)]
    assert alert_intervals([2], [], rows=20) == [(2, 19)]
