"""The publisher's configuration file: shared ``mqtt:`` and ``log:`` plus ``publisher:``.

The fleet itself (sites, devices, metrics, faults) usually lives in its own file named by
``publisher.fleet_file`` (relative to this file); it may also be written inline as
``publisher.fleet``. Command-line options override these keys for one run.

>>> config = PublisherFile.model_validate({"publisher": {"fleet_file": "fleets/hvac-plant.yaml"}})
>>> config.publisher.speed, config.publisher.payload, config.mqtt.qos
(1.0, 'single', 1)
>>> from iotwatch.config import errors_of
>>> errors_of(PublisherFile, {"publisher": {"payload": "batch"}})
["publisher.payload: must be one of 'single' or 'device', got 'batch'"]
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from iotwatch.config import HttpSettings, LogSettings, MqttSettings, StrictModel
from iotwatch.timeparse import TimestampError, parse_timestamp
from publisher.fleet import FleetSpec


class ReplaySettings(StrictModel):
    """Defaults for ``--replay``: the site of replayed devices, the metric of one-value files."""

    site: str = "replay"
    metric: str | None = None
    # NAB label windows of the replayed files (combined_windows.json): sent on as labels.
    windows: Path | None = None


class PublisherSettings(StrictModel):
    fleet_file: Path | None = None
    fleet: FleetSpec | None = None
    seed: int = Field(default=0, ge=0, lt=2**63)
    # First simulated timestamp (RFC 3339). Unset: now (see docs/publisher.md); with
    # --out: 2026-01-01T00:00:00Z, so files are reproducible.
    start: str | None = None
    # 1 = real time, 60 = a simulated minute per second, 0 = as fast as possible.
    speed: float = Field(default=1.0, ge=0)
    # Sampling ticks per stream (a dropped reading still uses its tick) ...
    count: int | None = Field(default=None, ge=1)
    # ... or simulated seconds; unset both to run until stopped.
    duration_s: float | None = Field(default=None, gt=0)
    payload: Literal["single", "device"] = "single"
    # Publish each injected fault on <prefix>/truth/<site>/<device>/<metric> (QoS 1).
    truth: bool = True
    # Also write the labels here when publishing to the broker (--out always writes them).
    labels_file: Path | None = None
    # Messages kept, in order, while the broker is unreachable; beyond it new ones are
    # dropped and counted (at speed 0 the run waits for the broker instead).
    buffer_size: int = Field(default=100_000, ge=1, le=10_000_000)
    # At the end, how long to wait for the broker to take what is still queued.
    drain_timeout_s: float = Field(default=60.0, ge=0)
    # Progress log line period when stderr is not a terminal (0: none).
    progress_interval_s: float = Field(default=10.0, ge=0)
    replay: ReplaySettings = ReplaySettings()

    @field_validator("start")
    @classmethod
    def _start(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_timestamp(value)
            except TimestampError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _one_fleet(self) -> PublisherSettings:
        if self.fleet is not None and self.fleet_file is not None:
            raise ValueError("set fleet_file or an inline fleet, not both")
        if self.count is not None and self.duration_s is not None:
            raise ValueError("set count or duration_s, not both")
        return self


class PublisherFile(StrictModel):
    mqtt: MqttSettings = MqttSettings()
    # /health and /metrics while publishing; off unless asked for (containers turn it on).
    http: HttpSettings = HttpSettings(enabled=False)
    log: LogSettings = LogSettings()
    publisher: PublisherSettings = PublisherSettings()
