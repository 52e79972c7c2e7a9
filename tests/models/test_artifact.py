"""Model files: saved with metadata, loaded back identically, refused with a clear error."""

import json

import numpy as np
import pytest

from detector.models import artifact, kinds
from detector.models.artifact import ModelError
from detector.models.features import FeatureSpec
from detector.models.train import TrainingData, fit
from tests.models.conftest import normal_device


def test_round_trip_scores_the_same(tmp_path, device_model):
    path = tmp_path / "pump.joblib"
    meta_path = artifact.save(device_model, path)
    meta = json.loads(meta_path.read_text())
    assert meta["scope"] == "device" and meta["target"] == "plant/pump"
    assert meta["metrics"] == ["pressure", "temp"]
    assert meta["training"]["rows"] == 800 and len(meta["training"]["sha256"]) == 64
    assert meta["versions"]["scikit-learn"] and meta["calibration"]["far"] == 0.01
    loaded = artifact.load(path)
    values = normal_device(seed=9)
    assert np.array_equal(loaded.score_series(values), device_model.score_series(values))


def test_other_scikit_learn_major_is_refused(tmp_path, device_model):
    path = tmp_path / "pump.joblib"
    meta_path = artifact.save(device_model, path)
    meta = json.loads(meta_path.read_text())
    meta["versions"]["scikit-learn"] = "0.24.2"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"pump.joblib: trained with scikit-learn 0.24.2"):
        artifact.load(path)


def test_other_features_are_refused(tmp_path, device_model):
    path = tmp_path / "pump.joblib"
    artifact.save(device_model, path)
    with pytest.raises(ModelError, match=r"pump.joblib: trained on features .*'windows': \[4, 8\]"):
        artifact.load(path, features=FeatureSpec())


def test_metadata_that_does_not_fit_the_pickle_is_refused(tmp_path, device_model):
    path = tmp_path / "pump.joblib"
    meta_path = artifact.save(device_model, path)
    meta = json.loads(meta_path.read_text())
    meta["features"]["windows"] = [4]
    meta["feature_names"] = FeatureSpec((4,), (1,)).names(meta["metrics"])
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="the fitted model takes 22 features, the metadata names 14"):
        artifact.load(path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "no-meta", "bad-meta", "missing"])
def test_broken_files_give_one_clear_error(tmp_path, device_model, damage):
    path = tmp_path / "pump.joblib"
    artifact.save(device_model, path)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "garbage":
        path.write_bytes(b"not a pickle at all")
    elif damage == "no-meta":
        path.with_suffix(".json").unlink()
    elif damage == "bad-meta":
        path.with_suffix(".json").write_text("{")
    else:
        path.unlink()
    with pytest.raises(ModelError) as caught:
        artifact.load(path)
    assert "pump" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("kind", sorted(kinds.KINDS))
def test_every_kind_scores_a_fault_above_normal(kind):
    values = normal_device(600)
    data = TrainingData([values], np.arange(600.0), ("a", "b"), "device", "s/d")
    params = {"max_iter": 15} if kind == "autoencoder" else {}
    model = fit(kind, data, FeatureSpec((4,), (1,)), params, seed=1)
    test = normal_device(300, seed=5)
    test[200:210, 0] += 8.0
    scores = model.score_series(test)
    assert scores[200:210].max() > np.percentile(scores[10:190], 99)
    assert model.calibration.rows >= 100
