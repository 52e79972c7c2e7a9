"""Fault injection: each kind changes exactly the readings its label names, as it says.

Every test runs the same stream twice, with and without the fault (the fault draws its
own random numbers, so the clean signal is the same), and compares.
"""

from __future__ import annotations

import statistics

import pytest

from iotwatch.config import ConfigError
from iotwatch.timeparse import parse_timestamp
from publisher.fleet import FleetSpec
from publisher.simulation import FleetSimulation

from .support import START_TS, faults, fleet

INTERVAL = 10.0
STREAM = "s/d/m"


def stream_fleet(*scheduled: dict, rate: float = 0.0, **random) -> dict:
    metric = {"baseline": 50.0, "noise": 1.0, "range": [0, 100], "unit": "C"}
    return fleet(templates={"t": {"interval_s": INTERVAL, "jitter_s": 2.0,
                                  "metrics": {"m": metric}}},
                 sites={"s": {"devices": [{"name": "d", "template": "t"}]}},
                 faults=faults(*scheduled, rate=rate, **random))


def simulate(data: dict, count: int = 200, seed: int = 4):
    simulation = FleetSimulation(FleetSpec.model_validate(data), START_TS, seed, count=count)
    samples = list(simulation)
    return samples, simulation.take_labels() + simulation.finish()


def compare(fault: dict, count: int = 200):
    """(clean samples by seq, faulty samples by seq, the one label)."""
    clean, none = simulate(stream_fleet(), count)
    faulty, labels = simulate(stream_fleet({"stream": STREAM, **fault}), count)
    assert none == [] and len(labels) == 1
    return {s.seq: s for s in clean}, {s.seq: s for s in faulty}, labels[0]


def inside(sample, label) -> bool:
    return label.start <= sample.ts <= label.end


def test_spike_adds_its_magnitude_to_one_reading() -> None:
    clean, faulty, label = compare({"kind": "spike", "start_s": 500,
                                    "params": {"magnitude": 20}})
    changed = [seq for seq in clean if faulty[seq].value != clean[seq].value]
    assert len(changed) == 1
    seq = changed[0]
    assert faulty[seq].value == pytest.approx(clean[seq].value + 20)
    assert label.start == label.end == faulty[seq].ts >= START_TS + 500
    assert faulty[seq].ts < START_TS + 500 + INTERVAL + 4  # the first tick at/after start
    assert (label.kind, label.params, label.source) == ("spike", {"magnitude": 20.0},
                                                        "scheduled")


def test_level_shift_moves_every_reading_of_its_window() -> None:
    clean, faulty, label = compare({"kind": "level_shift", "start_s": 300, "duration_s": 400,
                                    "params": {"delta": -7.5}})
    for seq, sample in faulty.items():
        expected = clean[seq].value + (-7.5 if inside(sample, label) else 0.0)
        assert sample.value == pytest.approx(expected)
    affected = [s for s in faulty.values() if inside(s, label)]
    assert len(affected) in (39, 40, 41)
    assert label.end - label.start <= 400


def test_drift_ramps_to_its_delta() -> None:
    clean, faulty, label = compare({"kind": "drift", "start_s": 100, "duration_s": 1000,
                                    "params": {"delta": 30}})
    offsets = [faulty[seq].value - clean[seq].value for seq in clean if inside(faulty[seq], label)]
    assert offsets == sorted(offsets)
    assert offsets[0] < 3 and offsets[-1] > 27


def test_stuck_repeats_the_last_reported_value() -> None:
    clean, faulty, label = compare({"kind": "stuck", "start_s": 300, "duration_s": 200})
    affected = [s for s in faulty.values() if inside(s, label)]
    before = max((s for s in faulty.values() if s.ts < label.start), key=lambda s: s.ts)
    assert {s.value for s in affected} == {before.value} == {label.params["value"]}
    assert all(faulty[seq] == clean[seq] for seq in clean if not inside(faulty[seq], label))


def test_noise_burst_adds_noise_of_its_std() -> None:
    clean, faulty, label = compare({"kind": "noise_burst", "start_s": 0, "duration_s": 5000,
                                    "params": {"std": 8}}, count=600)
    extra = [faulty[seq].value - clean[seq].value for seq in clean if inside(faulty[seq], label)]
    assert 6.5 < statistics.pstdev(extra) < 9.5


def test_dropout_removes_the_readings_of_its_window_and_leaves_a_seq_gap() -> None:
    clean, faulty, label = compare({"kind": "dropout", "start_s": 300, "duration_s": 100})
    missing = sorted(set(clean) - set(faulty))
    assert 9 <= len(missing) <= 11
    assert missing == list(range(missing[0], missing[-1] + 1))
    assert all(inside(clean[seq], label) for seq in missing)
    assert (label.start, label.end) == (clean[missing[0]].ts, clean[missing[-1]].ts)


def test_garbage_out_of_range_and_malformed() -> None:
    _clean, faulty, label = compare({"kind": "garbage", "start_s": 200,
                                     "params": {"mode": "out_of_range", "value": 999}})
    (bad,) = [s for s in faulty.values() if inside(s, label)]
    assert bad.value == 999 and label.params == {"mode": "out_of_range", "value": 999.0}
    _clean, faulty, label = compare({"kind": "garbage", "start_s": 200,
                                     "params": {"mode": "malformed"}})
    (bad,) = [s for s in faulty.values() if s.malformed]
    assert label.start == bad.ts and label.params["payload"] == bad.malformed
    assert bad.malformed in ("truncated_json", "non_numeric", "missing_value")


@pytest.mark.parametrize("kind", ["spike", "level_shift", "drift", "noise_burst", "stuck",
                                  "garbage"])
def test_parameters_not_given_are_drawn_and_recorded(kind: str) -> None:
    _clean, _faulty, label = compare({"kind": kind, "start_s": 500, "duration_s": 300})
    assert label.params and all(v is not None for v in label.params.values())
    if kind in ("spike", "level_shift", "drift"):
        size = abs(next(iter(label.params.values())))
        assert 3.0 <= size <= 50.0  # at the stream's own scale (noise 1.0), within range


def test_labels_are_rfc3339_lines_with_the_stream() -> None:
    _clean, _faulty, label = compare({"kind": "spike", "start_s": 500,
                                      "params": {"magnitude": 5}})
    line = label.to_dict()
    assert list(line) == ["site", "device", "metric", "kind", "start", "end", "params", "source"]
    assert (line["site"], line["device"], line["metric"]) == ("s", "d", "m")
    assert parse_timestamp(line["start"]) == label.start and line["end"].endswith("Z")


def test_a_fault_at_the_end_of_the_run_is_labelled_up_to_its_last_reading() -> None:
    samples, labels = simulate(stream_fleet({"stream": STREAM, "kind": "level_shift",
                                             "start_s": 1900, "duration_s": 9999,
                                             "params": {"delta": 5}}), count=200)
    (label,) = labels
    assert label.end == samples[-1].ts


def test_overlapping_scheduled_faults_are_a_config_error() -> None:
    data = stream_fleet({"stream": "s/*/m", "kind": "stuck", "start_s": 100, "duration_s": 100},
                        {"stream": STREAM, "kind": "spike", "start_s": 150})
    with pytest.raises(ConfigError) as caught:
        FleetSimulation(FleetSpec.model_validate(data), START_TS, 1)
    assert caught.value.errors == ["faults.scheduled.1: overlaps faults.scheduled.0 on s/d/m "
                                   "(one fault at a time per stream)"]


def test_random_faults_follow_their_rate_one_at_a_time_after_the_quiet_time() -> None:
    data = stream_fleet(rate=1.0, seed=3, not_before_s=3600)
    samples, labels = simulate(data, count=60 * 360)  # 60 hours of 10 s readings
    assert 25 <= len(labels) <= 60  # about one per hour, minus the time faults last
    assert all(label.source == "random" for label in labels)
    assert min(label.start for label in labels) >= START_TS + 3600
    spans = sorted((label.start, label.end) for label in labels)
    assert all(a_end < b_start for (_a, a_end), (b_start, _b) in zip(spans, spans[1:],
                                                                   strict=False))
    assert {label.kind for label in labels} == {"spike", "level_shift", "drift", "stuck",
                                                "noise_burst", "dropout", "garbage"}


def test_random_faults_have_their_own_seed() -> None:
    clean, _ = simulate(stream_fleet(), count=2000)
    one, labels_one = simulate(stream_fleet(rate=2.0, seed=1), count=2000)
    two, labels_two = simulate(stream_fleet(rate=2.0, seed=2), count=2000)
    assert labels_one != labels_two
    assert simulate(stream_fleet(rate=2.0, seed=1), count=2000) == (one, labels_one)
    # Outside its faults' windows every run carries the very same clean signal.
    for samples, labels in ((one, labels_one), (two, labels_two)):
        kept = {s.seq: s for s in samples}
        for sample in clean:
            if not any(label.start <= sample.ts <= label.end for label in labels):
                assert kept[sample.seq] == sample


def test_a_random_fault_never_runs_into_a_scheduled_one() -> None:
    scheduled = {"stream": STREAM, "kind": "dropout", "start_s": 7200, "duration_s": 3600}
    _samples, labels = simulate(stream_fleet(scheduled, rate=3.0, seed=5), count=6 * 360)
    spans = sorted((label.start, label.end, label.source) for label in labels)
    assert "scheduled" in {source for _s, _e, source in spans}
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:], strict=False))
