"""The compact half-space trees give exactly River's scores for the same seed and inputs."""

import random

import pytest
from river.anomaly import HalfSpaceTrees

from detector.engine.hst import (
    CompactHalfSpaceTrees,
    HalfSpaceTreesDetector,
    RiverHalfSpaceTreesDetector,
)


def _stream(seed: int, n: int, n_features: int) -> list[list[float]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        level = 0.3 if i < n // 2 else 0.6  # a shift half-way, so masses move
        row = [min(1.0, max(0.0, rng.gauss(level, 0.1))) for _ in range(n_features)]
        if i % 97 == 0:
            row[0] = rng.random()  # scattered outliers
        rows.append(row)
    return rows


@pytest.mark.parametrize(("n_trees", "height", "window_size", "n_features", "seed"), [
    (5, 3, 3, 1, 42),
    (10, 8, 50, 3, 7),
    (3, 6, 300, 2, 0),    # window >= 256: 16-bit masses
    (4, 10, 40, 4, 123),  # deep trees: more than 256 leaves per tree
])
def test_compact_scores_equal_river(n_trees, height, window_size, n_features, seed):
    river = HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window_size, seed=seed)
    compact = CompactHalfSpaceTrees(n_trees, height, window_size, n_features, seed)
    for row in _stream(seed, 4 * window_size + 37, n_features):
        x = dict(enumerate(row))
        assert compact.score_one(row) == river.score_one(x)
        river.learn_one(x)
        compact.learn_one(row)
    assert not compact.first_window


def test_detector_matches_river_backed_detector():
    params = {"n_trees": 6, "height": 5, "window_size": 40, "seed": 3}
    compact, reference = HalfSpaceTreesDetector(**params), RiverHalfSpaceTreesDetector(**params)
    rng = random.Random(5)
    for i in range(300):
        value = 20.0 + rng.gauss(0, 1) + (8.0 if 200 < i < 210 else 0.0)
        assert compact.score_one(value) == reference.score_one(value)
        compact.learn_one(value)
        reference.learn_one(value)


def test_default_per_stream_state_is_small():
    detector = HalfSpaceTreesDetector()
    assert detector.trees.nbytes < 20_000
