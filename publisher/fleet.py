"""The fleet file: sites x devices x metrics, their signal models, and the faults to inject.

A fleet is written once per plant; templates keep a site with twenty identical boilers
short. ``expand`` turns it into the flat, ordered list of streams the simulation runs
(order: sites, then devices, then metrics, as written), and checks what only the
expanded fleet can tell (duplicate streams, fault patterns that match nothing).

>>> fleet = FleetSpec.model_validate({
...     "templates": {"boiler": {"interval_s": 10, "metrics": {
...         "supply_temp": {"unit": "C", "baseline": 80, "noise": 0.3, "range": [0, 120]}}}},
...     "sites": {"plant-1": {"devices": [{"name": "boiler-{n}", "template": "boiler",
...                                         "count": 2}]}}})
>>> [s.name for s in expand(fleet)]
['plant-1/boiler-1/supply_temp', 'plant-1/boiler-2/supply_temp']
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, field_validator, model_validator

from iotwatch.config import SEGMENT, ConfigError, StrictModel, build_config

FaultKind = Literal["spike", "level_shift", "drift", "stuck", "noise_burst", "dropout",
                    "garbage"]
FAULT_KINDS: tuple[str, ...] = FaultKind.__args__  # type: ignore[attr-defined]
# The parameters each kind takes; any left out is drawn from the stream's own scale.
FAULT_PARAMS: dict[str, tuple[str, ...]] = {
    "spike": ("magnitude",), "level_shift": ("delta",), "drift": ("delta",),
    "noise_burst": ("std",), "stuck": ("value",), "dropout": (),
    "garbage": ("mode", "value", "payload"),
}
GARBAGE_MODES = ("out_of_range", "malformed")
# How a malformed reading is broken: each is rejected by the detector with its own reason.
MALFORMED_PAYLOADS = ("truncated_json", "non_numeric", "missing_value")


class DailyCycle(StrictModel):
    """A 24-hour sinusoid: ``amplitude`` above the baseline at ``peak_hour`` (UTC)."""

    amplitude: float = 0.0
    peak_hour: float = Field(default=15.0, ge=0, lt=24)


class Drift(StrictModel):
    """Slow wandering of the level: a mean-reverting random walk.

    ``std`` is how far it wanders (its long-run standard deviation, in the metric's
    unit), ``tau_h`` how slowly (hours for a move to be mostly forgotten).
    """

    std: float = Field(default=0.0, ge=0)
    tau_h: float = Field(default=12.0, gt=0)


class MetricSpec(StrictModel):
    """The signal model of one metric; ``interval_s``/``jitter_s`` default to the template's."""

    unit: str | None = Field(default=None, max_length=32)
    baseline: float
    noise: float = Field(default=0.0, ge=0)       # Gaussian noise std
    spread: float = Field(default=0.0, ge=0)      # std of a per-device offset of the baseline
    daily: DailyCycle = DailyCycle()
    drift: Drift = Drift()
    resolution: float | None = Field(default=None, gt=0)   # quantisation step
    range: tuple[float, float]                    # physical range [lo, hi]; values are clipped
    interval_s: float | None = Field(default=None, gt=0)
    jitter_s: float | None = Field(default=None, ge=0)

    @field_validator("range")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(math.isfinite(v) for v in value) or value[0] >= value[1]:
            raise ValueError(f"must be [lo, hi] with finite lo < hi, got {list(value)}")
        return value


class TemplateSpec(StrictModel):
    """A kind of device: its metrics and their default sampling."""

    interval_s: float = Field(default=10.0, gt=0)
    jitter_s: float = Field(default=0.0, ge=0)
    metrics: dict[str, MetricSpec] = Field(min_length=1)

    @field_validator("metrics")
    @classmethod
    def _metric_names(cls, value: dict[str, MetricSpec]) -> dict[str, MetricSpec]:
        for name in value:
            _check_segment(name, "metric name")
            if name in ("ts", "seq", "units", "value"):
                raise ValueError(f"metric name {name!r} is reserved by the payload format")
        return value


class DeviceGroup(StrictModel):
    """One device, or ``count`` devices named by ``name`` with ``{n}`` as 1..count
    (Python format: ``boiler-{n:02d}`` gives boiler-01, boiler-02, ...)."""

    name: str
    template: str
    count: int = Field(default=1, ge=1, le=100_000)

    @model_validator(mode="after")
    def _names(self) -> DeviceGroup:
        if self.count > 1 and "{n" not in self.name:
            raise ValueError(f"name {self.name!r} needs a {{n}} placeholder when count > 1")
        for name in self.device_names()[:1] + self.device_names()[-1:]:
            _check_segment(name, "device name")
        return self

    def device_names(self) -> list[str]:
        if "{n" not in self.name:
            return [self.name]
        try:
            return [self.name.format(n=n) for n in range(1, self.count + 1)]
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"name {self.name!r} is not a valid pattern with {{n}}: {exc}") \
                from None


class SiteSpec(StrictModel):
    devices: list[DeviceGroup] = Field(min_length=1)


class ScheduledFault(StrictModel):
    """A fault at a fixed time: ``start_s`` after the run's start, on every stream matching
    ``stream`` (``site/device/metric``, shell wildcards: ``plant-1/boiler-*/supply_temp``)."""

    stream: str
    kind: FaultKind
    start_s: float = Field(ge=0)
    duration_s: float = Field(default=0.0, ge=0)
    params: dict[str, float | str] = {}

    @model_validator(mode="after")
    def _params(self) -> ScheduledFault:
        allowed = FAULT_PARAMS[self.kind]
        for key, value in self.params.items():
            if key not in allowed:
                expected = ", ".join(allowed) or "none"
                raise ValueError(f"params.{key}: not a parameter of a {self.kind} fault "
                                 f"(expected: {expected})")
            choices = {"mode": GARBAGE_MODES, "payload": MALFORMED_PAYLOADS}.get(key)
            if choices is not None and value not in choices:
                raise ValueError(f"params.{key}: must be one of {', '.join(choices)}, "
                                 f"got {value!r}")
            if choices is None and not (isinstance(value, int | float)
                                        and math.isfinite(value)):
                raise ValueError(f"params.{key}: expected a finite number, got {value!r}")
        return self


class RandomFaults(StrictModel):
    """Faults at random times: a Poisson process per stream, one fault at a time."""

    rate_per_stream_per_hour: float = Field(default=0.0, ge=0)
    kinds: list[FaultKind] = Field(default=list(FAULT_KINDS), min_length=1)
    # Separate from the run's seed, so the same signals can carry other faults.
    seed: int | None = None
    # No random fault starts earlier (detectors need a quiet time to learn).
    not_before_s: float = Field(default=0.0, ge=0)
    # [min, max] duration per kind; 0 means a single reading.
    durations_s: dict[FaultKind, tuple[float, float]] = {}

    @field_validator("durations_s")
    @classmethod
    def _ordered(cls, value: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for kind, (low, high) in value.items():
            if low < 0 or high < low:
                raise ValueError(f"{kind}: must be [min, max] with 0 <= min <= max, "
                                 f"got {[low, high]}")
        return value


DEFAULT_DURATIONS_S: dict[str, tuple[float, float]] = {
    "spike": (0.0, 0.0), "garbage": (0.0, 0.0), "level_shift": (600.0, 3600.0),
    "drift": (1800.0, 7200.0), "stuck": (300.0, 1800.0), "noise_burst": (300.0, 1800.0),
    "dropout": (60.0, 900.0),
}


class FaultsSpec(StrictModel):
    scheduled: list[ScheduledFault] = []
    random: RandomFaults = RandomFaults()


class FleetSpec(StrictModel):
    """A whole fleet file."""

    templates: dict[str, TemplateSpec] = Field(min_length=1)
    sites: dict[str, SiteSpec] = Field(min_length=1)
    faults: FaultsSpec = FaultsSpec()

    @model_validator(mode="after")
    def _references(self) -> FleetSpec:
        for site, spec in self.sites.items():
            _check_segment(site, "site name")
            for group in spec.devices:
                if group.template not in self.templates:
                    raise ValueError(f"sites.{site}: unknown template {group.template!r} "
                                     f"(defined: {', '.join(self.templates)})")
        for name, template in self.templates.items():
            for metric, spec in template.metrics.items():
                interval = spec.interval_s or template.interval_s
                jitter = template.jitter_s if spec.jitter_s is None else spec.jitter_s
                if jitter * 2 >= interval:
                    raise ValueError(f"templates.{name}.metrics.{metric}: jitter_s must be "
                                     f"less than half the interval ({interval:g} s), got "
                                     f"{jitter:g}")
        return self


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One expanded stream: where it is and how its signal behaves."""

    index: int
    site: str
    device: str
    metric: str
    model: MetricSpec
    interval_s: float
    jitter_s: float

    @property
    def name(self) -> str:
        return f"{self.site}/{self.device}/{self.metric}"


def expand(fleet: FleetSpec) -> list[StreamSpec]:
    """Every stream of the fleet in a stable order; ConfigError on duplicates or on
    scheduled faults that match no stream."""
    streams: list[StreamSpec] = []
    seen: set[str] = set()
    errors: list[str] = []
    for site, spec in fleet.sites.items():
        for group_index, group in enumerate(spec.devices):
            template = fleet.templates[group.template]
            for device in group.device_names():
                for metric, model in template.metrics.items():
                    stream = StreamSpec(
                        len(streams), site, device, metric, model,
                        interval_s=model.interval_s or template.interval_s,
                        jitter_s=template.jitter_s if model.jitter_s is None else model.jitter_s)
                    if stream.name in seen:
                        errors.append(f"sites.{site}.devices.{group_index}: stream "
                                      f"{stream.name} is defined twice")
                        continue
                    seen.add(stream.name)
                    streams.append(stream)
    names = [s.name for s in streams]
    for index, fault in enumerate(fleet.faults.scheduled):
        if not any(fnmatch.fnmatchcase(name, fault.stream) for name in names):
            errors.append(f"faults.scheduled.{index}.stream: {fault.stream!r} matches no "
                          "stream (expected site/device/metric, wildcards allowed)")
    if errors:
        raise ConfigError(errors)
    return streams


def matching(fault: ScheduledFault, stream: StreamSpec) -> bool:
    return fnmatch.fnmatchcase(stream.name, fault.stream)


def load_fleet(path: str | Path) -> FleetSpec:
    """Read and validate a fleet file; ConfigError names the file and each bad key."""
    source = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"cannot read fleet file: {exc.strerror}"], source) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {exc}"], source) from exc
    if not isinstance(raw, dict):
        raise ConfigError(["a fleet file is a mapping with templates:, sites: and faults:"],
                          source)
    fleet = build_config(raw, FleetSpec, environ={}, source=source)
    try:
        expand(fleet)
    except ConfigError as exc:
        raise ConfigError(exc.errors, source) from None
    return fleet


def _check_segment(name: str, what: str) -> None:
    if not SEGMENT.match(name):
        raise ValueError(f"{what} {name!r} must be 1-64 characters of [A-Za-z0-9_.-] "
                         "(it becomes an MQTT topic level)")
