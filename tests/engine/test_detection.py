"""The default engine's detection mechanisms: range check, rest after a detection, stuck sensors."""

from __future__ import annotations

import random

from detector.engine import Engine, EngineSettings


def _noisy(rng: random.Random, n: int) -> list[float]:
    return [20.0 + rng.gauss(0.0, 0.5) for _ in range(n)]


def test_a_value_outside_the_range_seen_so_far_alerts_after_the_warmup():
    settings = EngineSettings(enabled=["range"])
    engine = Engine(settings)
    warmup = settings.detectors.range.warmup
    for i in range(warmup):
        assert not engine.process("s", "d", "m", float(i), float(i % 11)).anomaly  # 0 .. 10
    inside = engine.process("s", "d", "m", 1e4, 10.4)      # within 5 % of the range
    outside = engine.process("s", "d", "m", 1e4 + 1, 11.0)  # 10 % beyond it
    assert not inside.anomaly and outside.anomaly and outside.event.state == "firing"


def test_a_glitch_does_not_widen_the_range_for_good():
    engine = Engine(EngineSettings(enabled=["range"]))
    for i in range(2000):
        engine.process("s", "d", "m", float(i), float(i % 11))
    assert engine.process("s", "d", "m", 2000.0, 1e6).anomaly
    for i in range(300):
        engine.process("s", "d", "m", 2001.0 + i, float(i % 11))
    assert engine.process("s", "d", "m", 3000.0, 12.0).score > 0.65


def test_after_a_detection_the_score_rests_while_the_alert_follows_the_episode():
    rng = random.Random(3)
    engine = Engine(EngineSettings())
    rest = engine.settings.decision.rest_readings
    ts = 0.0
    for value in _noisy(rng, 2000):
        engine.process("s", "d", "m", ts, value)
        ts += 60.0
    shifted = []
    for value in _noisy(rng, rest + 100):  # a lasting level shift of 20 noise widths
        shifted.append(engine.process("s", "d", "m", ts, value + 10.0))
        ts += 60.0
    first = next(i for i, o in enumerate(shifted) if o.anomaly)
    assert shifted[first].event.state == "firing"
    held = shifted[first + 1:first + 1 + rest]
    assert len(held) == rest and all(o.score == 0.0 and not o.anomaly for o in held)
    summary = engine.stream_summaries()["s/d/m"]
    assert summary["episodes"] == 1


def test_rest_continues_across_a_snapshot():
    rng = random.Random(4)
    engine = Engine(EngineSettings())
    values = _noisy(rng, 2000) + [v + 10.0 for v in _noisy(rng, 50)]
    for i, value in enumerate(values):
        engine.process("s", "d", "m", 60.0 * i, value)
    assert engine._streams["s/d/m"].machine.rest_left > 0
    restored = Engine.restore(engine.settings, engine.snapshot())
    later = [v + 10.0 for v in _noisy(rng, 300)]
    for i, value in enumerate(later, start=len(values)):
        assert restored.process("s", "d", "m", 60.0 * i, value) == engine.process(
            "s", "d", "m", 60.0 * i, value)
    assert restored.snapshot() == engine.snapshot()


def test_the_default_engine_catches_a_stuck_sensor():
    rng = random.Random(5)
    engine = Engine(EngineSettings())
    values = [round(v, 2) for v in _noisy(rng, 2000)] + [20.13] * 60
    events = [engine.process("s", "d", "m", 60.0 * i, v).event for i, v in enumerate(values)]
    firing = [i for i, e in enumerate(events) if e is not None and e.state == "firing"]
    assert firing and all(i >= 2000 for i in firing)


def _device_rows(rng: random.Random, n: int, shift: float = 0.0) -> list[dict[str, float]]:
    rows = []
    for _ in range(n):
        a = rng.gauss(0.0, 1.0)
        rows.append({"a": a + shift, "b": 2.0 * a + rng.gauss(0.0, 0.3)})
    return rows


def test_a_device_alert_stays_on_for_the_episode():
    """A device fault is an episode: its alert outlasts short normal-looking stretches."""
    rng = random.Random(6)
    settings = EngineSettings()
    engine = Engine(settings)
    rows = _device_rows(rng, 500) + _device_rows(rng, 30, shift=8.0) + _device_rows(rng, 600)
    events = [(i, o.event.state) for i, row in enumerate(rows)
              if (o := engine.process_device("s", "pump", float(i), row)) and o.event]
    assert events[0][0] >= 500 and events[0][1] == "firing"
    resolved = [i for i, state in events if state == "resolved"]
    hold = settings.detectors.multivariate.resolve_readings
    assert resolved and resolved[0] - 530 >= hold - 1
    machine = engine._streams["s/pump/_device"].machine
    assert machine.settings.threshold == settings.detectors.multivariate.threshold


def test_a_fitted_device_model_stays_the_normal_prefix_and_survives_a_snapshot():
    settings = EngineSettings.model_validate({"detectors": {"multivariate": {"fit_readings": 200}}})
    rng = random.Random(7)
    engine = Engine(settings)
    for i, row in enumerate(_device_rows(rng, 300)):
        engine.process_device("s", "pump", float(i), row)
    detector = engine._streams["s/pump/_device"].detectors[0]
    assert detector.fitted and detector.n == 200
    mean = detector.mean.copy()
    restored = Engine.restore(settings, engine.snapshot())
    for i, row in enumerate(_device_rows(rng, 200, shift=3.0), start=300):
        assert restored.process_device("s", "pump", float(i), row) == engine.process_device(
            "s", "pump", float(i), row)
    assert (detector.mean == mean).all() and restored.snapshot() == engine.snapshot()
