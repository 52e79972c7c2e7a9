"""One garbage reading must not blind a stream; huge finite values never break the engine."""

from __future__ import annotations

import math
import random

import pytest

from detector.engine import Engine, EngineSettings
from detector.engine.calibration import Calibrator, surprise

ALL = ["zscore", "ewm_zscore", "diff_zscore", "hst", "river_hst", "flatline"]
GLITCHES = [1e3, 1e6, 1e200, 1e300, -1.7e308, 1.7976931348623157e308]


def _feed(engine: Engine, rng: random.Random, start: int, count: int) -> list:
    return [engine.process("s", "d", "m", float(start + i), rng.gauss(20.0, 1.0))
            for i in range(count)]


def _finite(value: object) -> bool:
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_finite(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return True


@pytest.mark.parametrize("glitch", GLITCHES)
def test_a_glitch_does_not_hide_a_later_spike(glitch: float) -> None:
    rng = random.Random(1)
    # No rest: this is about learning; a rest after an earlier detection would hold the score.
    engine = Engine(EngineSettings.model_validate({"decision": {"rest_readings": 0}}))
    _feed(engine, rng, 0, 2000)
    hit = engine.process("s", "d", "m", 2000.5, glitch)
    assert hit.anomaly and hit.score >= 0.9
    later = _feed(engine, rng, 2001, 500)
    assert not any(o.event and o.event.state == "firing" for o in later[100:])
    spike = engine.process("s", "d", "m", 2501.0, 30.0)  # 10 standard deviations
    assert spike.anomaly, spike


@pytest.mark.parametrize("value", [1e300, -1.7e308, 1.7976931348623157e308, -1e100, 5e99])
def test_huge_values_score_high_with_every_detector_and_state_stays_finite(value: float) -> None:
    rng = random.Random(2)
    engine = Engine(EngineSettings(enabled=ALL))
    _feed(engine, rng, 0, 600)
    outcome = engine.process("s", "d", "m", 600.0, value)
    assert outcome.anomaly and outcome.score >= 0.9
    assert all(math.isfinite(s) for s in outcome.scores.values())
    # several in a row, opposite signs too: nothing raises, nothing becomes inf or nan
    for i, v in enumerate([value, -value, value, 0.0, 20.0]):
        later = engine.process("s", "d", "m", 601.0 + i, v)
        assert math.isfinite(later.score)
    follow = _feed(engine, rng, 700, 300)
    assert all(math.isfinite(o.score) for o in follow)
    stream = engine._streams["s/d/m"]
    for detector in stream.detectors:
        state = detector.state()
        arrays = {k: v for k, v in state.items() if hasattr(v, "dtype")}
        assert _finite({k: v for k, v in state.items() if k not in arrays}), (detector, state)
    assert _finite(stream.calibrator.state())
    # and the stream still sees a fault afterwards (a burst of six garbage readings this
    # early in its life does widen the calibration a little: 20 standard deviations)
    assert engine.process("s", "d", "m", 1000.0, 40.0).anomaly


def test_device_detector_takes_huge_values() -> None:
    engine = Engine(EngineSettings())
    rng = random.Random(3)
    for t in range(300):
        engine.process_device("s", "d", float(t), {"a": rng.gauss(0, 1), "b": rng.gauss(5, 1)})
    outcome = engine.process_device("s", "d", 300.0, {"a": 1e300, "b": -1.7e308})
    assert outcome is not None and math.isfinite(outcome.score)


def test_a_real_level_shift_is_absorbed_after_the_bounded_skips() -> None:
    rng = random.Random(4)
    engine = Engine(EngineSettings())
    _feed(engine, rng, 0, 2000)
    shifted = [engine.process("s", "d", "m", float(2000 + i), 1000.0 + rng.gauss(0.0, 1.0))
               for i in range(3000)]
    assert shifted[0].anomaly
    events = [o.event.state for o in shifted if o.event]
    assert events[:2] == ["firing", "resolved"], events
    assert not any(o.anomaly for o in shifted[-500:])
    # the new level is the normal now: a spike from it is seen, a return to it is not
    assert engine.process("s", "d", "m", 5000.0, 1010.0).anomaly


def test_skips_are_bounded_and_reset_by_a_normal_reading() -> None:
    from detector.engine.zscore import ZScore

    detector = ZScore(warmup=5, skip_above=10.0, max_skips=3)
    for x in [1.0, 2.0, 1.5, 1.2, 1.8, 1.4]:
        detector.learn_one(x)
    n = detector.n
    detector.learn_one(1e6)             # skipped
    assert (detector.n, detector.skips) == (n, 1)
    detector.learn_one(1.5)             # normal: learned, run reset
    assert (detector.n, detector.skips) == (n + 1, 0)
    for _ in range(3):
        detector.learn_one(500.0)       # skipped, up to max_skips
    assert detector.n == n + 1
    detector.learn_one(500.0)           # a lasting change: learned from now on
    detector.learn_one(500.0)
    assert detector.n == n + 3


def test_calibrator_learns_a_winsorised_level() -> None:
    def trained(winsorize: float | None) -> Calibrator:
        calibrator = Calibrator(1, short_windows=(2, 60), warmup=50, winsorize=winsorize)
        for i in range(2000):
            calibrator.update([0.8 + 0.3 * ((i * 7919) % 13) / 13], [True])
        calibrator.update([1e6], [True])
        for i in range(100):
            calibrator.update([0.8 + 0.3 * ((i * 7919) % 13) / 13], [True])
        return calibrator

    assert trained(20.0).score([5.0]) > 0.65 > trained(None).score([5.0])


def test_surprise_is_finite_for_any_z() -> None:
    assert math.isfinite(surprise(1e300)) and math.isfinite(surprise(math.inf))
    calibrator = Calibrator(1, warmup=5)
    for i in range(20):
        calibrator.update([1.0 + 0.1 * (i % 3)], [True])
    assert calibrator.score([math.inf]) == pytest.approx(1.0)
    assert calibrator.score([math.nan]) < 0.1


def test_snapshot_mid_skip_run_continues_exactly() -> None:
    rng = random.Random(5)
    engine = Engine(EngineSettings())
    _feed(engine, rng, 0, 1000)
    engine.process("s", "d", "m", 1000.0, 1e300)
    engine.process("s", "d", "m", 1001.0, -1e300)
    restored = Engine.restore(engine.settings, engine.snapshot())
    values = [rng.gauss(20.0, 1.0) for _ in range(300)] + [1e250, 30.0]
    for i, v in enumerate(values):
        assert restored.process("s", "d", "m", 1002.0 + i, v) == engine.process(
            "s", "d", "m", 1002.0 + i, v)
    assert restored.snapshot() == engine.snapshot()
