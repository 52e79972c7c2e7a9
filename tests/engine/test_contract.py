"""Every registered detector honours the same contract (River's, plus checkpoints)."""

import math
import random

import pytest

from detector.engine import registry, snapshot
from detector.engine.registry import StreamContext
from detector.engine.settings import EngineSettings

# Small windows so every detector is past its warm-up within the test's readings.
SETTINGS = EngineSettings.model_validate({
    "detectors": {
        "zscore": {"warmup": 5},
        "ewm_zscore": {"warmup": 5, "halflife": 20},
        "diff_zscore": {"warmup": 5, "halflife": 20},
        "range": {"warmup": 5},
        "context": {"warmup": 20},
        "seasonal": {"seasons_s": [600.0], "warmup": 5, "min_strength": 0.0},
        "hst": {"n_trees": 4, "height": 5, "window_size": 20},
        "river_hst": {"n_trees": 4, "height": 5, "window_size": 20},
        "multivariate": {"n_trees": 4, "height": 5, "window_size": 20, "warmup": 5},
    },
    "seed": 11,
})


def _inputs(kind: str, n: int = 120, seed: int = 0) -> list:
    rng = random.Random(seed)
    values = [10.0 + math.sin(i / 5) + rng.gauss(0, 0.2) for i in range(n)]
    values[80] = 25.0
    if kind == "stream":
        return values
    return [{"a": v, "b": 2 * v + rng.gauss(0, 0.1), "c": rng.random()} for v in values]


def _inputs_for(name: str, n: int = 120) -> list:
    """The inputs ``name`` takes: (ts, value) pairs a minute apart for a clock-following one."""
    inputs = _inputs(registry.REGISTRY[name].kind, n)
    if getattr(_fresh(name), "timed", False):
        return [(60.0 * i, v) for i, v in enumerate(inputs)]
    return inputs


def _fresh(name: str):
    return registry.create(name, SETTINGS, StreamContext())


def _state_bytes(detector) -> bytes:
    return snapshot.encode(detector.state())


ALL = sorted(registry.REGISTRY)


@pytest.mark.parametrize("name", ALL)
def test_scores_are_floats_and_learning_returns_none(name):
    detector = _fresh(name)
    for x in _inputs_for(name):
        score = detector.score_one(x)
        assert isinstance(score, float) and math.isfinite(score)
        assert detector.learn_one(x) is None
    assert detector.ready


@pytest.mark.parametrize("name", ALL)
def test_scoring_does_not_change_state(name):
    detector = _fresh(name)
    inputs = _inputs_for(name)
    for x in inputs[:90]:
        detector.learn_one(x)
    before = _state_bytes(detector)
    first = [detector.score_one(x) for x in inputs[90:]]
    assert _state_bytes(detector) == before
    assert [detector.score_one(x) for x in inputs[90:]] == first


@pytest.mark.parametrize("name", ALL)
def test_clones_start_fresh_with_the_same_parameters(name):
    trained = _fresh(name)
    inputs = _inputs_for(name)
    for x in inputs:
        trained.learn_one(x)
    clone = trained.clone()
    assert type(clone) is type(trained)
    assert clone.params() == trained.params()
    assert _state_bytes(clone) == _state_bytes(_fresh(name))
    assert not clone.ready or registry.REGISTRY[name].name == "random"


@pytest.mark.parametrize("name", ALL)
def test_seeded_runs_repeat(name):
    inputs = _inputs_for(name)

    def run():
        detector = _fresh(name)
        scores = []
        for x in inputs:
            scores.append(detector.score_one(x))
            detector.learn_one(x)
        return scores

    assert run() == run()


@pytest.mark.parametrize("name", ALL)
def test_restored_state_scores_exactly_as_the_original(name):
    inputs = _inputs_for(name, n=150)
    original = _fresh(name)
    for x in inputs[:70]:  # mid-window: reference masses and a half-filled current window
        original.learn_one(x)
    restored = _fresh(name)
    restored.load_state(snapshot.decode(snapshot.encode(original.state())))
    for x in inputs[70:]:
        assert restored.score_one(x) == original.score_one(x)
        original.learn_one(x)
        restored.learn_one(x)


def test_registry_knows_its_kinds():
    assert set(registry.univariate_names()) == {"zscore", "ewm_zscore", "hst", "river_hst",
                                               "flatline", "random", "diff_zscore", "range", "context",
                                               "seasonal"}
    assert set(registry.device_names()) == {"device_hst", "mahalanobis"}
    with pytest.raises(KeyError, match="unknown detector 'nope' \\(known: "):
        registry.create("nope", SETTINGS, StreamContext())
