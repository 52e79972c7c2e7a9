"""The engine end to end on generated streams: faults, rules, devices, checkpoints."""

import math
import random

import pytest

from detector.engine import DEVICE_METRIC, Engine, EngineSettings
from detector.engine.snapshot import SnapshotError
from iotwatch.contracts import alert_fingerprint

START, LENGTH, TOTAL = 1200, 40, 1700
NOISE, AMPLITUDE, PERIOD = 0.3, 3.0, 1440
SCALE = math.hypot(NOISE, AMPLITUDE / 4)  # the publisher's yardstick for fault sizes


def sensor(fault: str | None = None, seed: int = 1, n: int = TOTAL) -> list[float]:
    """A temperature with a daily cycle and noise, and one fault of publisher-like size."""
    rng = random.Random(seed)
    values: list[float] = []
    for i in range(n):
        value = 20 + AMPLITUDE * math.sin(2 * math.pi * i / PERIOD) + rng.gauss(0, NOISE)
        if fault and START <= i < START + LENGTH:
            if fault == "spike" and i == START:
                value += 8 * SCALE
            elif fault == "level_shift":
                value += 4.5 * SCALE
            elif fault == "noise_burst":
                value += rng.gauss(0, 4.5 * SCALE)
            elif fault == "stuck" and i > START:
                value = values[START]
        values.append(value)
    return values


def run(engine: Engine, values: list[float], stream=("plant", "boiler-1", "temperature")):
    return [engine.process(*stream, 60.0 * i, value) for i, value in enumerate(values)]


@pytest.mark.parametrize("fault", ["spike", "level_shift", "noise_burst"])
@pytest.mark.parametrize("seed", [1, 2])
def test_one_fault_gives_one_firing_and_one_resolve(fault, seed):
    outcomes = run(Engine(), sensor(fault, seed))
    events = [(i, o.event) for i, o in enumerate(outcomes) if o.event is not None]
    assert [e.state for _, e in events] == ["firing", "resolved"], events
    (fired_at, firing), (resolved_at, resolved) = events
    assert START <= fired_at <= START + LENGTH
    assert resolved_at > fired_at and resolved.started_at == firing.started_at
    assert firing.fingerprint == alert_fingerprint("plant", "boiler-1", "temperature", "anomaly")
    assert firing.fingerprint == resolved.fingerprint
    assert firing.threshold == EngineSettings().decision.threshold <= firing.score <= 1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_quiet_stream_raises_nothing(seed):
    outcomes = run(Engine(), sensor(None, seed))
    assert [o.event for o in outcomes if o.event] == []
    assert all(0.0 <= o.score <= 1.0 for o in outcomes)


def test_stuck_sensor_is_caught_by_flatline_where_a_rule_enables_it():
    settings = EngineSettings.model_validate({"streams": [
        {"match": "+/+/temperature", "enabled": ["zscore", "ewm_zscore", "diff_zscore", "hst", "flatline"]}]})
    # quantised like a real sensor, so repeats happen now and then
    values = [round(v, 1) for v in sensor("stuck")]
    events = [(i, o.event.state) for i, o in enumerate(run(Engine(settings), values))
              if o.event]
    assert [state for _, state in events] == ["firing", "resolved"]
    assert START < events[0][0] <= START + LENGTH


def test_scores_do_not_depend_on_units():
    celsius = sensor("level_shift")
    millikelvin = [(v + 273.15) * 1000 for v in celsius]
    a = run(Engine(), celsius)
    b = run(Engine(), millikelvin, stream=("plant", "boiler-1", "temperature_mk"))
    assert [o.anomaly for o in a] == [o.anomaly for o in b]
    assert max(abs(x.score - y.score) for x, y in zip(a, b, strict=True)) < 1e-3


def test_peek_changes_nothing_and_agrees_with_process():
    engine = Engine()
    values = sensor("spike")
    run(engine, values[:START])
    before = engine.snapshot()
    peeked = engine.peek("plant", "boiler-1", "temperature", 60.0 * START, values[START])
    assert engine.snapshot() == before
    processed = engine.process("plant", "boiler-1", "temperature", 60.0 * START, values[START])
    assert peeked == processed
    assert engine.peek("plant", "new", "stream", 0.0, 1.0).score == 0.0
    assert "plant/new/stream" not in engine.stream_summaries()


def test_stream_rules_apply_in_order_to_matching_streams_only():
    settings = EngineSettings.model_validate({"streams": [
        {"match": "+/+/temperature", "range": [-40, 125], "threshold": 0.7},
        {"match": "plant/boiler-2/#", "threshold": 0.9, "enabled": ["zscore"]}]})
    engine = Engine(settings)
    one = engine.process("plant", "boiler-1", "temperature", 0.0, 20.0)
    two = engine.process("plant", "boiler-2", "temperature", 0.0, 20.0)
    other = engine.process("plant", "boiler-1", "pressure", 0.0, 1.0)
    assert (one.threshold, two.threshold, other.threshold) == (0.7, 0.9, 0.65)
    assert list(one.scores) == ["zscore", "ewm_zscore", "diff_zscore", "range", "flatline",
                               "seasonal"]
    assert list(two.scores) == ["zscore"]


def test_a_declared_range_reaches_the_tree_detectors():
    settings = EngineSettings.model_validate({"enabled": ["hst", "river_hst"], "streams": [
        {"match": "+/+/temperature", "range": [-40, 125]}]})
    engine = Engine(settings)
    engine.process("plant", "boiler-1", "temperature", 0.0, 20.0)
    engine.process("plant", "boiler-1", "pressure", 0.0, 1.0)
    hst, river = engine._streams["plant/boiler-1/temperature"].detectors
    assert hst.value_range == river.value_range == (-40.0, 125.0)
    assert engine._streams["plant/boiler-1/pressure"].detectors[0].value_range is None


def test_device_detector_scores_the_metric_vector():
    engine = Engine()
    assert engine.process_device("plant", "pump-1", 0.0, {"flow": 1.0}) is None
    rng = random.Random(3)
    outcomes = []
    for i in range(900):
        flow = 10 + rng.gauss(0, 0.2)
        power = 2 * flow + rng.gauss(0, 0.2)
        if i == 800:
            power = 2 * flow - 6  # each value plausible alone, not together
        outcomes.append(engine.process_device("plant", "pump-1", float(i),
                                              {"flow": flow, "power": power}))
    assert outcomes[800].anomaly and outcomes[800].event.state == "firing"
    assert outcomes[800].event.fingerprint == alert_fingerprint("plant", "pump-1", DEVICE_METRIC,
                                                                "anomaly")
    assert sum(o.anomaly for o in outcomes[300:800]) <= 2
    summary = engine.stream_summaries()[f"plant/pump-1/{DEVICE_METRIC}"]
    assert summary["count"] == 900 and summary["detectors"] == ["mahalanobis"]
    disabled = Engine(EngineSettings.model_validate(
        {"detectors": {"multivariate": {"enabled": False}}}))
    assert disabled.process_device("plant", "pump-1", 0.0, {"a": 1.0, "b": 2.0}) is None


def _feed(engine: Engine, i: int, values: dict[str, list[float]]):
    out = [engine.process("plant", name, "temperature", 60.0 * i, series[i])
           for name, series in values.items()]
    out.append(engine.process_device("plant", "pump-1", 60.0 * i,
                                     {"flow": values["a"][i], "power": values["b"][i]}))
    return out


LIKELIHOOD = {"calibration": {"likelihood": {"enabled": True, "block": 50, "warmup": 100}}}


@pytest.mark.parametrize("options", [{}, LIKELIHOOD], ids=["default", "likelihood"])
@pytest.mark.parametrize("cut", [100, 350, START + 5, START + LENGTH + 3])  # warm-up, firing, resolving
def test_restored_engine_continues_exactly(cut, options):
    values = {"a": sensor("level_shift", 1), "b": sensor("noise_burst", 2),
              "c": sensor(None, 3)}
    original = Engine(EngineSettings.model_validate(options))
    for i in range(cut):
        _feed(original, i, values)
    restored = Engine.restore(original.settings, original.snapshot())
    assert restored.reset_streams == []
    assert restored.stream_summaries() == original.stream_summaries()
    for i in range(cut, TOTAL):
        assert _feed(restored, i, values) == _feed(original, i, values)
    assert restored.snapshot() == original.snapshot()


def test_restore_under_changed_detector_settings_keeps_alert_state_but_relearns():
    engine = Engine()
    run(engine, sensor("level_shift")[: START + 5])
    assert engine.stream_summaries()["plant/boiler-1/temperature"]["alert_state"] == "firing"
    changed = EngineSettings.model_validate({"detectors": {"hst": {"n_trees": 4}}})
    restored = Engine.restore(changed, engine.snapshot())
    assert restored.reset_streams == ["plant/boiler-1/temperature"]
    summary = restored.stream_summaries()["plant/boiler-1/temperature"]
    assert summary["alert_state"] == "firing"
    assert restored._streams["plant/boiler-1/temperature"].detectors[0].n == 0


@pytest.mark.parametrize("data", [b"", b"not a snapshot", b"IOTWENG\x09xyz", b"IOTWENG\x01xyz"])
def test_bad_snapshots_are_refused_with_a_reason(data):
    with pytest.raises(SnapshotError):
        Engine.restore(EngineSettings(), data)


def test_likelihood_stage_finds_the_fault_and_keeps_a_quiet_stream_quiet():
    settings = EngineSettings.model_validate(LIKELIHOOD)
    quiet = run(Engine(settings), sensor(None, 3))
    assert [o.event for o in quiet if o.event] == []
    outcomes = run(Engine(settings), sensor("level_shift", 1))
    fired = [i for i, o in enumerate(outcomes) if o.event and o.event.state == "firing"]
    assert fired and START <= fired[0] <= START + LENGTH


def test_likelihood_history_is_bounded():
    from detector.engine.calibration import Likelihood

    likelihood = Likelihood(window=10, block=20, blocks=5, warmup=10)
    for i in range(5000):
        likelihood.learn(0.1 * (i % 7))
    assert len(likelihood.counts) == 5 and len(likelihood.recent) == 9
    assert sum(likelihood.counts) <= 100
