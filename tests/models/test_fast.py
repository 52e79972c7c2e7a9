"""The live one-row scorers give scikit-learn's own scores, for every kind."""

import numpy as np
import pytest

from detector.models import kinds
from detector.models.fast import row_scorer


@pytest.mark.parametrize("kind", sorted(kinds.KINDS))
def test_fast_row_scores_equal_scikit_learn(kind):
    rng = np.random.default_rng(3)
    X = np.column_stack([rng.normal(5, 2, 800), rng.exponential(1, 800), rng.normal(0, 1e3, 800)])
    params = {"max_iter": 10, "hidden": 2.0} if kind == "autoencoder" else {}
    if kind == "isolation_forest":
        params = {"n_estimators": 60}
    pipeline = kinds.build(kind, params, seed=1, n_features=3)
    kinds.fit(pipeline, kind, X[:600], lambda done, total: None)
    test = np.vstack([X[600:], [[50.0, 30.0, -1e4]]])  # normal rows and one far outside
    expected = kinds.raw_scores(pipeline, kind, test)
    score = row_scorer(pipeline, kind)
    got = np.array([score(row) for row in test.tolist()])
    assert np.allclose(got, expected, rtol=1e-9, atol=1e-12)
