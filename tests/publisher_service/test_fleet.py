"""The fleet file: expansion, and errors that name the key and say what is expected."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from iotwatch.config import ConfigError, errors_of
from publisher.fleet import FleetSpec, expand, load_fleet

from .support import PROJECT, faults, fleet, write_yaml

SAMPLE_FLEETS = sorted((PROJECT / "config" / "fleets").glob("*.yaml"))


def test_expansion_is_sites_then_devices_then_metrics_as_written() -> None:
    streams = expand(FleetSpec.model_validate(fleet()))
    assert [s.name for s in streams] == [
        "plant-1/boiler-1/supply_temp", "plant-1/boiler-1/pressure",
        "plant-1/boiler-2/supply_temp", "plant-1/boiler-2/pressure", "plant-1/pump-1/power"]
    assert [s.index for s in streams] == list(range(5))
    assert (streams[0].interval_s, streams[0].jitter_s) == (10, 0.5)
    assert (streams[4].interval_s, streams[4].jitter_s) == (20, 0.0)


def test_a_metric_overrides_its_templates_sampling() -> None:
    data = fleet()
    data["templates"]["boiler"]["metrics"]["pressure"].update(interval_s=60, jitter_s=0)
    streams = expand(FleetSpec.model_validate(data))
    assert (streams[1].interval_s, streams[1].jitter_s) == (60, 0)


def test_device_names_from_a_pattern() -> None:
    data = fleet(sites={"s": {"devices": [{"name": "boiler-{n:02d}", "template": "pump",
                                           "count": 12}]}})
    names = [s.device for s in expand(FleetSpec.model_validate(data))]
    assert names[0] == "boiler-01" and names[-1] == "boiler-12" and len(names) == 12


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d["templates"]["boiler"]["metrics"]["pressure"].update(range=[5, 1]),
     "templates.boiler.metrics.pressure.range: must be [lo, hi] with finite lo < hi, got [5.0, 1.0]"),
    (lambda d: d["templates"]["boiler"]["metrics"]["pressure"].pop("baseline"),
     "templates.boiler.metrics.pressure.baseline: required key is missing"),
    (lambda d: d["templates"]["boiler"]["metrics"]["pressure"].update(noise=-1),
     "templates.boiler.metrics.pressure.noise: must be >= 0, got -1"),
    (lambda d: d["templates"]["boiler"]["metrics"]["pressure"].update(nois=1),
     "templates.boiler.metrics.pressure.nois: unknown key"),
    (lambda d: d["templates"]["boiler"]["metrics"]["pressure"].update(daily={"amp": 1}),
     "templates.boiler.metrics.pressure.daily.amp: unknown key"),
    (lambda d: d["templates"]["boiler"].update(jitter_s=5),
     "jitter_s must be less than half the interval (10 s), got 5"),
    (lambda d: d["sites"]["plant-1"]["devices"][0].update(template="chiller"),
     "sites.plant-1: unknown template 'chiller' (defined: boiler, pump)"),
    (lambda d: d["sites"]["plant-1"]["devices"][0].update(name="boiler"),
     "name 'boiler' needs a {n} placeholder when count > 1"),
    (lambda d: d["sites"]["plant-1"]["devices"][1].update(name="pump 1"),
     "device name 'pump 1' must be 1-64 characters of [A-Za-z0-9_.-]"),
    (lambda d: d["templates"]["pump"]["metrics"].update(ts={"baseline": 1, "range": [0, 2]}),
     "metric name 'ts' is reserved by the payload format"),
    (lambda d: d.update(faults=faults({"stream": "plant-1/*/x", "kind": "melt", "start_s": 0})),
     "faults.scheduled.0.kind: must be one of 'spike', 'level_shift', 'drift', 'stuck', "
     "'noise_burst', 'dropout' or 'garbage', got 'melt'"),
    (lambda d: d.update(faults=faults({"stream": "plant-1/*/power", "kind": "spike",
                                       "start_s": 0, "params": {"delta": 3}})),
     "params.delta: not a parameter of a spike fault (expected: magnitude)"),
    (lambda d: d.update(faults=faults({"stream": "plant-1/*/power", "kind": "garbage",
                                       "start_s": 0, "params": {"mode": "loud"}})),
     "params.mode: must be one of out_of_range, malformed, got 'loud'"),
    (lambda d: d.update(faults=faults(rate=-1)),
     "faults.random.rate_per_stream_per_hour: must be >= 0, got -1"),
])
def test_errors_name_the_key(change, expected: str) -> None:
    data = fleet()
    change(data)
    errors = errors_of(FleetSpec, data)
    assert any(expected in error for error in errors), errors


def test_expansion_errors_name_the_fault_or_device(tmp_path: Path) -> None:
    data = fleet(faults=faults({"stream": "plant-9/*/power", "kind": "spike", "start_s": 0}))
    data["sites"]["plant-1"]["devices"].append({"name": "pump-1", "template": "pump"})
    with pytest.raises(ConfigError) as caught:
        load_fleet(write_yaml(tmp_path / "fleet.yaml", data))
    assert caught.value.errors == [
        "sites.plant-1.devices.2: stream plant-1/pump-1/power is defined twice",
        "faults.scheduled.0.stream: 'plant-9/*/power' matches no stream (expected "
        "site/device/metric, wildcards allowed)"]
    assert str(tmp_path / "fleet.yaml") in str(caught.value)


def test_unreadable_fleet_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read fleet file"):
        load_fleet(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="a fleet file is a mapping"):
        load_fleet(tmp_path / "list.yaml")


@pytest.mark.parametrize("path", SAMPLE_FLEETS, ids=lambda p: p.stem)
def test_sample_fleets_are_valid(path: Path) -> None:
    streams = expand(load_fleet(path))
    assert len(streams) >= 30


def test_the_sample_fleets_cover_the_systems_users_run() -> None:
    assert [p.stem for p in SAMPLE_FLEETS] == ["environmental-network", "factory-line",
                                               "hvac-plant"]
    metrics = {p.stem: {s.metric for s in expand(load_fleet(p))} for p in SAMPLE_FLEETS}
    assert {"supply_temp", "return_temp", "pressure", "power", "flow"} <= metrics["hvac-plant"]
    assert {"temperature", "humidity", "sound", "vibration"} <= metrics["factory-line"]
    assert metrics["environmental-network"] == {"temperature", "humidity", "light", "voltage"}


def test_the_documented_example_fleet_is_valid() -> None:
    text = (PROJECT / "docs" / "publisher.md").read_text()
    block = re.search(r"A complete example:\n\n```yaml\n(.*?)```", text, re.S)
    assert block, "docs/publisher.md lost its example fleet"
    streams = expand(FleetSpec.model_validate(yaml.safe_load(block.group(1))))
    assert len(streams) == 20 * 2 + 1 + 2 * 2
