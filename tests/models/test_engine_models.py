"""Trained models inside the (pure) engine: stream rules, device rules, checkpoints, config."""

import numpy as np
import pytest

from detector.config import DetectorFile
from detector.engine import Engine, EngineSettings
from detector.engine.registry import univariate_names
from detector.models.service import check_usage, register
from iotwatch.config import errors_of
from tests.models.conftest import normal_device


def _settings(rules):
    # No rest after a detection: these tests look at every reading's decision.
    return EngineSettings.model_validate({
        "enabled": ["zscore"], "calibration": {"warmup": 20},
        "decision": {"threshold": 0.5, "resolve_readings": 5, "rest_readings": 0},
        "streams": rules})


def test_a_stream_model_scores_its_stream_and_alerts_on_a_fault(stream_model):
    register({"p": stream_model})
    engine = Engine(_settings([{"match": "plant/pump/pressure", "enabled": ["model:p"]}]))
    values = normal_device(400, seed=4)[:, 0]
    values[300:306] += 6.0
    outcomes = [engine.process("plant", "pump", "pressure", float(t), float(v))
                for t, v in enumerate(values)]
    assert set(outcomes[0].scores) == {"model:p"}
    assert sum(o.anomaly for o in outcomes[50:300]) <= 5  # rare on normal data
    assert any(o.anomaly for o in outcomes[300:306])
    # other streams keep the configured detectors
    other = engine.process("plant", "pump", "flow", 0.0, 1.0)
    assert set(other.scores) == {"zscore"}


def test_a_device_model_replaces_the_device_detector(device_model):
    register({"pump": device_model})
    engine = Engine(_settings([{"match": "plant/pump/_device", "enabled": ["model:pump"]}]))
    values = normal_device(300, seed=6)
    values[250:255, 1] += 3.0
    outs = [engine.process_device("plant", "pump", float(t),
                                  {"pressure": float(a), "temp": float(b)})
            for t, (a, b) in enumerate(values)]
    assert set(outs[0].scores) == {"model:pump"}
    assert max(o.scores["model:pump"] for o in outs[250:255]) > max(
        o.scores["model:pump"] for o in outs[40:250])
    # a device without a rule keeps the configured multivariate detector
    assert set(engine.process_device("plant", "fan", 0.0, {"a": 1.0, "b": 2.0}).scores) == {
        "mahalanobis"}
    # a checkpoint carries the feature window: restored, the next outcome is identical
    restored = Engine.restore(engine.settings, engine.snapshot())
    reading = {"pressure": 20.3, "temp": 5.1}
    assert restored.process_device("plant", "pump", 301.0, reading) == engine.process_device(
        "plant", "pump", 301.0, reading)


def test_models_are_not_configuration_names(stream_model):
    register({"p": stream_model})
    assert not any(n.startswith("model:") for n in univariate_names())


def test_a_model_name_must_be_declared_in_models_files():
    errors = errors_of(DetectorFile, {"detector": {"streams": [
        {"match": "a/b/c", "enabled": ["zscore", "model:boiler"]}]}})
    assert len(errors) == 1 and "streams.0.enabled: 'model:boiler' is not in models.files" \
        in errors[0]
    assert errors_of(DetectorFile, {"detector": {"models": {"files": {"x": "../x.joblib"}}}})
    assert errors_of(DetectorFile, {"detector": {
        "models": {"files": {"boiler": "b.joblib"}},
        "streams": [{"match": "a/b/c", "enabled": ["model:boiler"]}]}}) == []


@pytest.mark.parametrize("match,ok", [("plant/pump/_device", True), ("plant/+/_device", False),
                                      ("plant/pump/temp", False), ("plant/fan/_device", False)])
def test_a_device_model_fits_only_its_device_rule(device_model, tmp_path, match, ok):
    from detector.models.artifact import ModelError

    settings = _settings([{"match": match, "enabled": ["model:pump"]}])
    if ok:
        check_usage(settings, {"pump": device_model}, {"pump": tmp_path / "pump.joblib"})
    else:
        with pytest.raises(ModelError, match=r"pump.joblib, kmeans\) was trained for device"):
            check_usage(settings, {"pump": device_model}, {"pump": tmp_path / "pump.joblib"})


def test_feature_rows_online_match_training(stream_model):
    from detector.models.detector import ModelDetector

    values = normal_device(200, seed=8)[:, :1]
    offline = stream_model.score_series(values)
    detector = ModelDetector(stream_model)
    online = []
    for v in values[:, 0]:
        online.append(detector.score_one(float(v)))
        detector.learn_one(float(v))
    assert np.allclose(online, offline, rtol=1e-9, atol=1e-9)


def test_a_checkpoint_from_another_model_file_restarts_the_window(device_model, stream_model):
    import dataclasses

    register({"pump": device_model})
    settings = _settings([{"match": "plant/pump/_device", "enabled": ["model:pump"]}])
    engine = Engine(settings)
    for t, (a, b) in enumerate(normal_device(100, seed=1)):
        engine.process_device("plant", "pump", float(t), {"pressure": float(a), "temp": float(b)})
    saved = engine.snapshot()
    # the operator replaces the file with a model of other metrics under the same name
    other = dataclasses.replace(device_model, metrics=("flow", "pressure", "temp"))
    register({"pump": other})
    restored = Engine.restore(settings, saved)
    outcome = restored.process_device("plant", "pump", 100.0,
                                      {"flow": 1.0, "pressure": 20.0, "temp": 5.0})
    assert outcome.scores == {"model:pump": 0.0}  # warming up again, no crash
