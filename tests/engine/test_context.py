"""The contextual-novelty detector: new sequences of value bands score, known ones do not."""

import math

from detector.engine import Engine, EngineSettings
from detector.engine.context import ContextNovelty


def _wave(i: int) -> float:
    return 10.0 + 5.0 * math.sin(2 * math.pi * i / 50)


def test_a_known_cycle_scores_nothing_and_a_new_path_through_it_scores():
    detector = ContextNovelty(levels=8, order=3, warmup=100)
    for i in range(2000):
        detector.learn_one(_wave(i))
    for i in range(2000, 2050):
        assert detector.score_one(_wave(i)) == 0.0
        detector.learn_one(_wave(i))
    # Inside the range, but jumping from the top of the cycle straight to the bottom.
    detector.learn_one(14.9)
    assert detector.score_one(5.1) > 0.0


def test_nothing_is_scored_or_kept_during_the_warmup():
    detector = ContextNovelty(warmup=50)
    for i in range(49):
        assert detector.score_one(_wave(i)) == 0.0
        detector.learn_one(_wave(i))
    assert not detector.ready and not any(detector.counts)


def test_one_glitch_does_not_stretch_the_bands():
    detector = ContextNovelty(levels=8, warmup=100)
    for i in range(500):
        detector.learn_one(_wave(i))
    detector.learn_one(1e12)
    assert detector.bands.high < 20.0


def test_state_is_a_fixed_small_table():
    detector = ContextNovelty()   # 16 bands, contexts of up to 3
    assert len(detector.counts) == 18 + 18 ** 2 + 18 ** 3
    for i in range(5000):
        detector.learn_one(_wave(i) + (i % 7) * 0.01)
    assert len(detector.counts) == 18 + 18 ** 2 + 18 ** 3


def test_engine_snapshot_continues_exactly_with_context_enabled():
    settings = EngineSettings(enabled=["zscore", "context"],
                              detectors={"context": {"warmup": 100}})
    first = Engine(settings)
    for i in range(600):
        first.process("s", "d", "m", float(i), _wave(i))
    second = Engine.restore(settings, first.snapshot())
    for i in range(600, 900):
        value = _wave(i) if i != 700 else 2.0
        a = first.process("s", "d", "m", float(i), value)
        b = second.process("s", "d", "m", float(i), value)
        assert a == b
    assert first.snapshot() == second.snapshot()
