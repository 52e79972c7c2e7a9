"""The online (one reading at a time) and offline (vectorised) features are the same numbers."""

import numpy as np
import pytest

from detector.models.features import FeatureSpec, OnlineFeatures, offline_features


def _online(values: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    window = OnlineFeatures(spec, width=values.shape[1])
    rows = []
    for row in values.tolist():
        features = window.features_of(row)
        rows.append(features if features is not None else [np.nan] * window.size)
        window.learn(row)
    return np.array(rows)


@pytest.mark.parametrize("spec", [FeatureSpec(), FeatureSpec((2,), ()), FeatureSpec((5, 3), (4,))])
def test_online_and_offline_agree_per_stream(spec):
    rng = np.random.default_rng(1)
    values = (np.cumsum(rng.normal(size=500)) + 1e4)[:, None]  # a drifting, offset level
    online, offline = _online(values, spec), offline_features(values, spec)
    assert online.shape == offline.shape == (500, len(spec.per_metric()))
    assert np.array_equal(np.isnan(online), np.isnan(offline))
    assert np.isnan(offline[:spec.history - 1]).all() and not np.isnan(offline[spec.history - 1:]).any()
    assert np.allclose(online[spec.history - 1:], offline[spec.history - 1:], rtol=1e-12, atol=1e-9)


def test_online_and_offline_agree_per_device():
    rng = np.random.default_rng(2)
    values = np.column_stack([rng.normal(20, 1, 300), rng.exponential(3, 300), np.arange(300.0)])
    spec = FeatureSpec((4, 16), (1, 3))
    online, offline = _online(values, spec), offline_features(values, spec)
    assert offline.shape[1] == 3 * len(spec.per_metric()) == len(spec.names(("a", "b", "c")))
    ready = spec.history - 1
    assert np.allclose(online[ready:], offline[ready:], rtol=1e-12, atol=1e-9)
    # each metric's block is that metric's own features
    alone = offline_features(values[:, 1:2], spec)
    block = len(spec.per_metric())
    assert np.array_equal(offline[ready:, block:2 * block], alone[ready:])


def test_online_state_is_bounded_and_restorable():
    spec = FeatureSpec((8, 32), (1, 2))
    window = OnlineFeatures(spec)
    for v in range(1000):
        window.learn([float(v)])
    assert len(window.recent) == spec.history - 1 == 31
    copy = OnlineFeatures(spec)
    copy.load_state(window.state())
    assert copy.features_of([5.0]) == window.features_of([5.0])


def test_short_series_gives_only_warmup_rows():
    out = offline_features(np.ones((3, 1)), FeatureSpec((8,), ()))
    assert out.shape == (3, 6) and np.isnan(out).all()


@pytest.mark.parametrize("bad", [dict(windows=(1,)), dict(windows=(4, 4)), dict(lags=(0,))])
def test_bad_spec_is_refused(bad):
    with pytest.raises(ValueError):
        FeatureSpec(**bad)
