"""NAB scoring rules, each pinned by a case computed by hand.

Numbers used below (S is NAB's scaled sigmoid, S(p) = 2 / (1 + e^(5p)) - 1):
  S(-1)   = 0.9866142982   (a detection on a window's first row; divided out so it earns A_tp)
  S(-0.5) = 0.8482836400   -> 0.8482836400 / 0.9866142982 = 0.8597926...
  S(-0.1) = 0.2449186624   -> / S(-1) = 0.2482414...
  S(1/9)  = -0.2708471...  (a false positive one row after a 10-row window)
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from detector.evaluate.nab import (
    PROFILES,
    ScoredFile,
    Window,
    probation_rows,
    scaled_sigmoid,
    score_at,
    score_corpus,
    score_profiles,
    sweep,
)

STANDARD = PROFILES["standard"]
LOW_FP = PROFILES["reward_low_FP_rate"]
LOW_FN = PROFILES["reward_low_FN_rate"]
S_MINUS_1 = 2 / (1 + math.exp(-5)) - 1


def one_file(detections: dict[int, float], rows: int = 100,
             windows: tuple[Window, ...] = (Window(50, 59),), name: str = "f.csv") -> ScoredFile:
    scores = np.zeros(rows)
    for row, score in detections.items():
        scores[row] = score
    return ScoredFile(name, scores, windows)


def raw_at(file: ScoredFile, profile=STANDARD, threshold: float = 0.5) -> float:
    return score_at([file], profile, threshold).raw


@pytest.mark.parametrize(("position", "expected"), [
    (-1.0, 0.9866142982), (-0.5, 0.8482836400), (0.0, 0.0), (-0.1, 0.2449186624),
    (1.0, -0.9866142982), (3.0, -0.9999993882), (3.0001, -1.0), (50.0, -1.0),
])
def test_scaled_sigmoid(position, expected):
    assert scaled_sigmoid(position) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(("rows", "expected"), [
    (100, 15), (4032, 604), (5000, 750), (5001, 750), (22695, 750), (6, 0), (7, 1),
])
def test_probation_is_15_percent_capped_at_750_rows(rows, expected):
    assert probation_rows(rows) == expected


def test_profiles_have_nabs_published_weights():
    weights = {p.name: (p.tp_weight, p.fp_weight, p.fn_weight) for p in PROFILES.values()}
    assert weights == {"standard": (1.0, 0.11, 1.0), "reward_low_FP_rate": (1.0, 0.22, 1.0),
                       "reward_low_FN_rate": (1.0, 0.11, 2.0)}


def test_detection_on_first_row_of_window_earns_exactly_tp_weight():
    assert raw_at(one_file({50: 0.9})) == pytest.approx(1.0, abs=1e-12)


def test_detection_on_last_row_of_window_earns_the_sigmoid_of_its_position():
    # p = -(59 - 59 + 1) / 10 = -0.1
    assert raw_at(one_file({59: 0.9})) == pytest.approx(0.2449186624 / S_MINUS_1, abs=1e-9)


def test_only_the_earliest_detection_in_a_window_counts():
    late = one_file({55: 0.9, 59: 0.9, 57: 0.9})
    # p = -(59 - 55 + 1) / 10 = -0.5
    assert raw_at(late) == pytest.approx(0.8482836400 / S_MINUS_1, abs=1e-9)
    assert raw_at(one_file({50: 0.9, 52: 0.9})) == pytest.approx(1.0)


def test_a_missed_window_costs_fn_weight():
    assert raw_at(one_file({})) == -1.0
    assert raw_at(one_file({}), LOW_FN) == -2.0


@pytest.mark.parametrize(("profile", "expected"), [(STANDARD, -0.11), (LOW_FP, -0.22)])
def test_false_positive_before_any_window_costs_fp_weight(profile, expected):
    assert raw_at(one_file({30: 0.9, 50: 0.9}), profile) == pytest.approx(1.0 + expected)


@pytest.mark.parametrize(("row", "factor"), [
    (60, -0.2708471),         # distance 1/9 of the window width after its end
    (68, -0.9866143),         # distance 9/9 = 1
    (86, -0.9999994),         # distance 27/9 = 3: still on the curve
    (90, -1.0),               # distance 31/9 > 3: the full cost
])
def test_false_positive_after_a_window_is_weighted_by_distance_from_its_end(row, factor):
    # Window 50..59 is detected on its first row (+1); the FP adds 0.11 * S(distance).
    raw = raw_at(one_file({50: 0.9, row: 0.9}))
    assert raw - 1.0 == pytest.approx(0.11 * factor, abs=1e-7)


def test_false_positive_after_a_one_row_window_does_not_divide_by_zero():
    file = one_file({50: 0.9, 51: 0.9}, windows=(Window(50, 50),))
    assert raw_at(file) == pytest.approx(1.0 + 0.11 * scaled_sigmoid(1.0))


def test_detections_during_probation_are_ignored():
    # probation of 100 rows is 15: rows 0..14 never count, row 15 does.
    assert raw_at(one_file({3: 0.9, 14: 0.9, 50: 0.9})) == pytest.approx(1.0)
    assert raw_at(one_file({15: 0.9, 50: 0.9})) == pytest.approx(1.0 - 0.11)


def test_window_entirely_in_probation_is_not_scored():
    result = score_at([one_file({5: 0.9}, windows=(Window(2, 8),))], STANDARD, 0.5)
    assert (result.windows, result.raw, result.score) == (0, 0.0, None)


def test_window_partly_in_probation_is_scored_from_probation_end():
    # Window 10..19 straddles the end of probation (15): detection on row 15 has
    # p = -(19 - 15 + 1) / 10 = -0.5.
    file = one_file({15: 0.9}, windows=(Window(10, 19),))
    assert raw_at(file) == pytest.approx(0.8482836400 / S_MINUS_1, abs=1e-9)
    assert score_at([file], STANDARD, 0.5).windows == 1


def test_one_threshold_per_profile_is_optimised_over_the_corpus():
    # File a: an FP at 0.9 (row 20) and its window's first row at 0.8.
    # File b: its window found halfway (row 55) at 0.7.
    a = one_file({20: 0.9, 50: 0.8}, name="a.csv")
    b = one_file({55: 0.7}, name="b.csv")
    table = dict(sweep([a, b], STANDARD))
    assert table[math.inf] == -2.0                                 # nothing detected
    assert table[0.9] == pytest.approx(-2.11)                      # only the FP
    assert table[0.8] == pytest.approx(-0.11)                      # + window a at its start
    assert table[0.7] == pytest.approx(1 - 0.11 + 0.8597926, abs=1e-6)
    best = score_corpus([a, b], STANDARD)
    assert best.threshold == 0.7
    assert best.raw == pytest.approx(1.7497926, abs=1e-6)
    # normalised: 100 * (raw - null) / (perfect - null), null = -2, perfect = 2
    assert best.score == pytest.approx(100 * (1.7497926 + 2) / 4, abs=1e-4)
    assert best.per_file == pytest.approx({"a.csv": 0.89, "b.csv": 0.8597926}, abs=1e-6)


def test_profiles_weight_the_same_detections_differently():
    a = one_file({20: 0.9, 50: 0.8}, name="a.csv")
    b = one_file({55: 0.7}, name="b.csv")
    results = score_profiles([a, b])
    assert results["reward_low_FP_rate"].score == pytest.approx(
        100 * (1 - 0.22 + 0.8597926 + 2) / 4, abs=1e-4)
    # null = -2 * 2 = -4, perfect = 2
    assert results["reward_low_FN_rate"].score == pytest.approx(
        100 * (1 - 0.11 + 0.8597926 + 4) / 6, abs=1e-4)


def test_equal_scores_prefer_the_higher_threshold():
    # Row 55 adds nothing once row 50 detected the window: 0.9 and 0.5 tie at 1.0.
    result = score_corpus([one_file({50: 0.9, 55: 0.5})], STANDARD)
    assert (result.threshold, result.raw) == (0.9, 1.0)


def test_null_detector_scores_zero_and_perfect_detector_scores_100():
    windows = (Window(30, 39), Window(70, 79))
    null = [ScoredFile("n.csv", np.full(100, 0.5), windows)]
    assert score_corpus(null, STANDARD).score == 0.0
    perfect = [one_file({30: 1.0, 70: 1.0}, windows=windows)]
    for profile in PROFILES.values():
        assert score_corpus(perfect, profile).score == pytest.approx(100.0)


def test_rows_with_equal_scores_switch_on_together():
    # Both rows score 0.6: there is no threshold that takes the window row alone.
    table = dict(sweep([one_file({20: 0.6, 50: 0.6})], STANDARD))
    assert set(table) == {math.inf, 0.6, 0.0}
    assert table[0.6] == pytest.approx(1.0 - 0.11)


def test_sweep_agrees_with_scoring_each_threshold_directly():
    rng = np.random.default_rng(7)
    files = [ScoredFile(f"f{i}.csv", np.round(rng.random(300), 2),
                        (Window(100 + 20 * i, 140 + 20 * i), Window(220, 230)))
             for i in range(3)]
    for threshold, total in sweep(files, STANDARD):
        assert score_at(files, STANDARD, threshold).raw == pytest.approx(total, abs=1e-9)
    best = score_corpus(files, STANDARD)
    assert sum(best.per_file.values()) == pytest.approx(best.raw)
