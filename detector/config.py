"""The detector service's configuration file: shared sections plus ``detector:``.

``detector:`` is the engine's settings (``detector.detectors.hst.window_size`` ...) with
the service's own keys beside them: what to subscribe to, how to batch and acknowledge,
where points go, the spool, checkpoints and input limits. Every key has a default, so an
empty file runs the service against a local broker and InfluxDB 1.x.

>>> config = DetectorFile.model_validate({"detector": {"detectors": {"hst": {"window_size": 64}}}})
>>> config.detector.detectors.hst.window_size, config.detector.spool.max_bytes
(64, 1073741824)
>>> from iotwatch.config import errors_of
>>> errors_of(DetectorFile, {"detector": {"output": {"sink": "s3"}}})
["detector.output.sink: must be one of 'influxdb', 'file' or 'none', got 's3'"]
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from detector.engine.settings import MODEL_PREFIX, EngineSettings
from detector.forecast.settings import ForecastSettings
from detector.streamlimit import StreamLimits
from detector.summaries.settings import SummarySettings
from iotwatch.config import HttpSettings, InfluxSettings, LogSettings, MqttSettings, StrictModel
from iotwatch.parse import ParseLimits

_DEFAULT_LIMITS = ParseLimits()
_DEFAULT_STREAMS = StreamLimits()


class InputSettings(StrictModel):
    """What the service consumes and how much it holds un-acknowledged."""

    # mqtt: one instance subscribes to the broker (mqtt: section). nats: several instances
    # share the partitions of a NATS JetStream stream (nats: section, docs/scale-out.md).
    source: Literal["mqtt", "nats"] = "mqtt"
    # Topic filters under <prefix>/readings/; empty means all readings (<prefix>/readings/#).
    subscriptions: list[str] = []
    qos: Literal[0, 1] = 1
    # Messages received but not yet processed; a full queue stops reading from the broker.
    queue_size: int = Field(default=10_000, ge=10, le=1_000_000)
    # A batch is handed to the writer once it holds this many MQTT messages, so acks flow
    # back before the broker's in-flight window (mosquitto max_inflight_messages) fills.
    ack_batch: int = Field(default=200, ge=1, le=65_535)
    # ... or once no message arrived for this long (low rates, small broker windows).
    idle_flush_s: float = Field(default=0.05, gt=0, le=10)

    @field_validator("subscriptions")
    @classmethod
    def _filters(cls, value: list[str]) -> list[str]:
        for topic in value:
            if not topic or "#" in topic[:-1] or (topic.endswith("#") and topic[-2:] != "/#"
                                                  and topic != "#"):
                raise ValueError(f"must be MQTT topic filters ('#' only as the last level), "
                                 f"got {topic!r}")
        return value


class LimitsSettings(StrictModel):
    """Bounds on acceptable input; anything outside is dead-lettered with its reason."""

    max_payload_bytes: int = Field(default=_DEFAULT_LIMITS.max_payload_bytes, ge=64,
                                   le=16_777_216)
    max_metrics: int = Field(default=_DEFAULT_LIMITS.max_metrics, ge=1, le=1024)
    max_future_s: float = Field(default=_DEFAULT_LIMITS.max_future_s, ge=0)
    min_epoch_s: float = Field(default=_DEFAULT_LIMITS.min_epoch_s, ge=0)
    # Streams (site/device/metric) held in memory at most, and new ones accepted a minute;
    # beyond, messages of new streams are dead-lettered as stream_limit.
    max_streams: int = Field(default=_DEFAULT_STREAMS.max_streams, ge=1, le=10_000_000)
    max_new_streams_per_minute: int = Field(default=_DEFAULT_STREAMS.max_new_per_minute,
                                            ge=1, le=10_000_000)
    # A stream without readings for this long is saved beside the checkpoint and dropped
    # from memory (when room is needed, and by a sweep once a minute); loaded back exactly
    # when it returns.
    evict_idle_s: float = Field(default=_DEFAULT_STREAMS.evict_idle_s, ge=1)

    def parse_limits(self) -> ParseLimits:
        return ParseLimits(self.max_payload_bytes, self.max_metrics, self.max_future_s,
                           self.min_epoch_s)

    def stream_limits(self) -> StreamLimits:
        return StreamLimits(self.max_streams, self.max_new_streams_per_minute,
                            self.evict_idle_s)


class OutputSettings(StrictModel):
    """Where points go and what the alert topics carry."""

    # influxdb: the influxdb: section (v1 or v2 API); file: line protocol appended to
    # ``file`` (a store for demos without a database); none: alerts only, points dropped.
    sink: Literal["influxdb", "file", "none"] = "influxdb"
    file: Path = Path("data/detector/points.lp")
    # Write per-device (multivariate) outcomes as points with metric "_device".
    device_points: bool = True
    # On resolve the retained alert-state topic is cleared (an empty retained message), so
    # it holds exactly what fires now; "resolved" keeps the resolved alert there instead.
    alert_state_on_resolve: Literal["clear", "resolved"] = "clear"
    # The iotwatch_service measurement with the service's counters, every this many seconds.
    stats_interval_s: float = Field(default=10.0, ge=1, le=3600)


class SpoolSettings(StrictModel):
    """The on-disk buffer for points InfluxDB could not take yet."""

    dir: Path = Path("data/detector/spool")
    max_bytes: int = Field(default=1 << 30, ge=1 << 16)
    segment_bytes: int = Field(default=16 << 20, ge=1 << 12)


class CheckpointSettings(StrictModel):
    """Engine state saved to disk so a restart keeps learning and open alerts."""

    path: Path = Path("data/detector/checkpoint.bin")
    interval_s: float = Field(default=60.0, ge=1)
    # A checkpoint also follows any alert transition within this many seconds, so the
    # alert states a restart restores are rarely older than the last published alert.
    after_alert_s: float = Field(default=5.0, ge=0)


class ModelsSettings(StrictModel):
    """Trained model files (``iotwatch train``), used in ``enabled`` lists as ``model:<name>``.

    Only files named here are loaded, and only from ``directory``: a joblib file is a
    pickle, and loading one runs code it contains.
    """

    directory: Path = Path("models")
    # name -> file name inside ``directory`` (its metadata MODEL.json lies beside it)
    files: dict[str, str] = {}

    @field_validator("files")
    @classmethod
    def _plain_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, file in value.items():
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
                raise ValueError(f"model names are [A-Za-z0-9_.-]{{1,64}}, got {name!r}")
            if not re.fullmatch(r"[A-Za-z0-9_.-]+\.joblib", file) or file.startswith("."):
                raise ValueError(f"{name}: must be a .joblib file name inside the model "
                                 f"directory (no path), got {file!r}")
        return value


class SequenceSettings(StrictModel):
    """Checks of the readings' ``seq`` numbers, so readings lost on the way are seen."""

    enabled: bool = True
    # /health turns "degraded" (503) when more than this share of the recent readings
    # is missing by their seq numbers.
    max_gap_rate: float = Field(default=0.01, ge=0, le=1)
    # "Recent": the last this many to twice this many readings expected by seq.
    window: int = Field(default=10_000, ge=100, le=100_000_000)


class NatsSettings(StrictModel):
    """The distributed mode's NATS JetStream (``detector.input.source: nats``).

    ``partitions`` must be the N of the server's ``{{partition(N,1,2,3)}}`` mapping
    (config/nats/nats-server.conf); every instance of one deployment uses the same section
    except ``instance``.
    """

    url: str = "nats://127.0.0.1:4222"
    partitions: int = Field(default=16, ge=1, le=4096)
    # Partition n's readings (<prefix>.part.<n>.>) are the JetStream stream <stream>_<n>.
    stream: str = Field(default="IOTWATCH_READINGS", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    # How long the stream keeps readings (acknowledged or not): a new owner re-reads
    # everything after a partition's acknowledged floor, so this bounds an outage.
    stream_max_age_s: float = Field(default=86_400.0, ge=60)
    # Unique per instance; empty: <hostname>-<pid>.
    instance: str = Field(default="", pattern=r"^[A-Za-z0-9_-]{0,64}$")
    # Leases and member heartbeats live this long without renewal (renewed every third).
    lease_ttl_s: float = Field(default=10.0, ge=1, le=3600)
    lease_bucket: str = Field(default="iotwatch_leases", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    checkpoint_bucket: str = Field(default="iotwatch_checkpoints",
                                   pattern=r"^[A-Za-z0-9_-]{1,64}$")
    # Messages fetched per pull request, and un-acknowledged per partition at most.
    fetch_batch: int = Field(default=500, ge=1, le=10_000)
    max_ack_pending: int = Field(default=20_000, ge=1)
    # Redelivery of a message not acknowledged in time (a live but stuck owner).
    ack_wait_s: float = Field(default=60.0, ge=1)
    # A partition given up (another instance joined) waits at most this long for its
    # readings in flight to be stored and acknowledged before its final checkpoint.
    release_timeout_s: float = Field(default=30.0, ge=1)


class DetectorSection(EngineSettings):
    """The ``detector:`` section: engine settings plus the service's keys."""

    input: InputSettings = InputSettings()
    output: OutputSettings = OutputSettings()
    spool: SpoolSettings = SpoolSettings()
    checkpoint: CheckpointSettings = CheckpointSettings()
    limits: LimitsSettings = LimitsSettings()
    sequence: SequenceSettings = SequenceSettings()
    forecast: ForecastSettings = ForecastSettings()
    summaries: SummarySettings = SummarySettings()
    models: ModelsSettings = ModelsSettings()

    @model_validator(mode="after")
    def _models_declared(self) -> DetectorSection:
        declared = {f"{MODEL_PREFIX}{name}" for name in self.models.files}
        lists = [("enabled", self.enabled)] + [
            (f"streams.{i}.enabled", rule.enabled) for i, rule in enumerate(self.streams)]
        for where, names in lists:
            for name in names or ():
                if name.startswith(MODEL_PREFIX) and name not in declared:
                    known = ", ".join(sorted(declared)) or "none"
                    raise ValueError(f"{where}: {name!r} is not in models.files "
                                     f"(declared: {known})")
        return self


class DetectorFile(StrictModel):
    """A whole ``config/detector.yaml``."""

    mqtt: MqttSettings = MqttSettings()
    influxdb: InfluxSettings = InfluxSettings()
    http: HttpSettings = HttpSettings()
    log: LogSettings = LogSettings()
    detector: DetectorSection = DetectorSection()
    nats: NatsSettings = NatsSettings()
