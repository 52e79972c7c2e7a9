"""Configuration errors name the key path and say what is expected."""

import pytest

from detector.engine.settings import EngineSettings
from iotwatch.config import errors_of

CASES = [
    ({"detectors": {"hst": {"window_size": 0}}},
     "detectors.hst.window_size: must be >= 1, got 0"),
    ({"detectors": {"hst": {"height": 20}}},
     "detectors.hst.height: must be <= 14, got 20"),
    ({"detectors": {"zscore": {"warmup": "soon"}}},
     "detectors.zscore.warmup: expected an integer, got 'soon'"),
    ({"detectors": {"hst": {"features": ["value", "kurtosis"]}}},
     "detectors.hst.features.1: must be one of "),
    ({"detectors": {"nope": {}}},
     "detectors.nope: unknown key (expected one of: zscore, ewm_zscore, diff_zscore, "),
    ({"enabled": ["zscore", "isolation_forest"]},
     "enabled: unknown detector 'isolation_forest' (known: context, diff_zscore, ewm_zscore, "),
    ({"enabled": []}, "enabled: must name at least one detector"),
    ({"enabled": ["hst", "hst"]}, "enabled: detectors must not repeat"),
    ({"calibration": {"short_windows": [0, 60]}},
     "calibration.short_windows: must be distinct window lengths between 1 and 1000"),
    ({"calibration": {"combine": "median"}}, "calibration.combine: must be one of 'max' or 'mean'"),
    ({"decision": {"threshold": 1.5}}, "decision.threshold: must be <= 1, got 1.5"),
    ({"decision": {"threshold": 0.5, "resolve_threshold": 0.7}},
     "decision: resolve_threshold must be <= threshold (0.5), got 0.7"),
    ({"streams": [{"match": "a/#/b"}]},
     "streams.0.match: '#' must be the last level of a pattern, got 'a/#/b'"),
    ({"streams": [{"match": "a/b"}]}, "streams.0.match: must have 3 levels"),
    ({"streams": [{"match": "+/+/temp", "range": [10, 0]}]},
     "streams.0.range: must be [low, high] with low < high, got [10.0, 0.0]"),
    ({"streams": [{"match": "+/+/temp", "enabled": ["zscore", "bogus"]}]},
     "streams.0.enabled: unknown detector 'bogus'"),
    ({"streams": [{"match": "+/+/temp", "threshhold": 0.9}]},
     "streams.0.threshhold: unknown key (expected one of: match, enabled, range, threshold"),
]


@pytest.mark.parametrize(("data", "message"), CASES, ids=[c[1][:40] for c in CASES])
def test_error_names_the_key(data, message):
    errors = errors_of(EngineSettings, data)
    assert any(error.startswith(message) for error in errors), errors


def test_defaults_are_valid_and_complete():
    settings = EngineSettings()
    assert errors_of(EngineSettings, {}) == []
    assert settings.enabled == ["zscore", "ewm_zscore", "diff_zscore", "range", "flatline",
                                "seasonal"]
    assert 0 < settings.decision.threshold < 1


def test_a_service_section_can_extend_the_engine_settings():
    class DetectorSection(EngineSettings):
        queue: int = 5

    assert errors_of(DetectorSection, {"queue": 7, "detectors": {"hst": {"n_trees": 0}}}) == [
        "detectors.hst.n_trees: must be >= 1, got 0"]
