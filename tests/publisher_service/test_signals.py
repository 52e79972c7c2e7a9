"""Clean signals: deterministic per stream, sampled on time, shaped as configured."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime

import pytest

from publisher.fleet import FleetSpec
from publisher.simulation import FleetSimulation, default_start

from .support import START_TS, fleet


def run(data: dict, seed: int = 1, count: int = 50) -> list:
    return list(FleetSimulation(FleetSpec.model_validate(data), START_TS, seed, count=count))


def one_metric(**metric) -> dict:
    spec = {"baseline": 10.0, "range": [-1000, 1000], **metric}
    return fleet(templates={"t": {"interval_s": 60, "metrics": {"m": spec}}},
                 sites={"s": {"devices": [{"name": "d", "template": "t"}]}})


def test_same_seed_same_samples_other_seed_other_values() -> None:
    assert run(fleet(), seed=1) == run(fleet(), seed=1)
    assert [s.value for s in run(fleet(), seed=1)] != [s.value for s in run(fleet(), seed=2)]


def test_a_streams_signal_does_not_depend_on_the_rest_of_the_fleet() -> None:
    small = fleet()
    small["sites"]["plant-1"]["devices"] = [{"name": "boiler-{n}", "template": "boiler",
                                             "count": 1}]
    alone = [s for s in run(small) if s.device == "boiler-1"]
    among = [s for s in run(fleet()) if s.device == "boiler-1"]
    assert alone == among


def test_samples_come_in_time_order_with_bounded_jitter() -> None:
    samples = run(fleet(), count=100)
    times = [s.ts for s in samples]
    assert times == sorted(times)
    for sample in samples:
        nominal = START_TS + sample.seq * (20 if sample.device == "pump-1" else 10)
        assert sample.ts >= START_TS and abs(sample.ts - nominal) <= 0.5
        assert sample.offset_s == sample.ts - START_TS
    # Metrics of one device share their sampling instants (one device message each).
    boiler = [s for s in samples if s.device == "boiler-2"]
    assert [s.ts for s in boiler[0::2]] == [s.ts for s in boiler[1::2]]
    assert len({s.ts for s in samples if s.device != "pump-1"}) > 100  # jitter differs


def test_count_and_duration_bound_each_stream() -> None:
    samples = run(fleet(), count=7)
    assert {s.seq for s in samples} == set(range(7)) and len(samples) == 35
    by_time = list(FleetSimulation(FleetSpec.model_validate(fleet()), START_TS, 1,
                                   duration_s=100))
    assert len([s for s in by_time if s.device == "boiler-1"]) == 2 * 10
    assert len([s for s in by_time if s.device == "pump-1"]) == 5


def test_values_are_quantised_and_clipped() -> None:
    samples = run(one_metric(noise=30.0, resolution=0.5, range=[0, 20]), count=500)
    values = [s.value for s in samples]
    assert all(v * 2 == int(v * 2) for v in values)
    assert min(values) == 0.0 and max(values) == 20.0  # the noise saturates the sensor


def test_daily_cycle_peaks_at_its_hour() -> None:
    samples = run(one_metric(daily={"amplitude": 5.0, "peak_hour": 15}), count=24 * 60)
    peak = max(samples, key=lambda s: s.value)
    trough = min(samples, key=lambda s: s.value)
    assert datetime.fromtimestamp(peak.ts, UTC).hour == 15
    assert datetime.fromtimestamp(trough.ts, UTC).hour == 3
    assert peak.value == pytest.approx(15.0) and trough.value == pytest.approx(5.0)


def test_drift_wanders_about_its_configured_spread_and_comes_back() -> None:
    samples = run(one_metric(drift={"std": 2.0, "tau_h": 1.0}), count=20_000)
    values = [s.value for s in samples]
    assert 1.5 < statistics.pstdev(values) < 2.5
    assert abs(statistics.fmean(values) - 10.0) < 0.5
    # Slow: neighbouring readings are much closer than the spread.
    steps = [abs(b - a) for a, b in zip(values, values[1:], strict=False)]
    assert statistics.fmean(steps) < 0.5


def test_spread_gives_devices_their_own_level() -> None:
    data = one_metric(spread=5.0)
    data["sites"]["s"]["devices"] = [{"name": "d{n}", "template": "t", "count": 8}]
    levels = {s.device: s.value for s in run(data, count=1)}
    assert len(set(levels.values())) == 8 and statistics.pstdev(levels.values()) > 1.0


def test_noise_has_its_configured_std() -> None:
    values = [s.value for s in run(one_metric(noise=2.0), count=5000)]
    assert 1.9 < statistics.pstdev(values) < 2.1


@pytest.mark.parametrize(("now", "speed", "span", "expected"), [
    (1768905030.5, 1.0, 3600.0, 1768905000.0),      # real time: the current minute
    (1768905030.5, 1.0, None, 1768905000.0),
    (1768905030.5, 60.0, None, 1768905000.0),       # unbounded: cannot end "now"
    (1768905030.5, 0.0, 3600.0, 1768901400.0),      # as fast as possible: ends about now
    (1768905030.5, 60.0, 90.0, 1768904880.0),       # spans round up to whole minutes
])
def test_default_start(now: float, speed: float, span: float | None, expected: float) -> None:
    assert default_start(now, speed, span) == expected
