"""Strict configuration: key paths in errors, environment overrides, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

from iotwatch.config import (
    ConfigError,
    InfluxSettings,
    LogSettings,
    MqttSettings,
    StrictModel,
    build_config,
    errors_of,
    load_config,
)


class Hst(StrictModel):
    window_size: int = Field(default=250, ge=1)
    n_trees: int = Field(default=10, ge=1, le=100)


class Detectors(StrictModel):
    hst: Hst = Hst()


class Section(StrictModel):
    detectors: Detectors = Detectors()
    named: dict[str, Hst] = {}
    maybe_named: dict[str, Hst] | None = None
    threshold: float = Field(default=0.99, gt=0, lt=1)
    mode: str = "online"


class File(StrictModel):
    mqtt: MqttSettings = MqttSettings()
    influxdb: InfluxSettings = InfluxSettings()
    log: LogSettings = LogSettings()
    detector: Section = Section()


@pytest.mark.parametrize(("data", "expected"), [
    ({"detector": {"detectors": {"hst": {"window_size": 0}}}},
     "detector.detectors.hst.window_size: must be >= 1, got 0"),
    ({"detector": {"detectors": {"hst": {"n_trees": 500}}}},
     "detector.detectors.hst.n_trees: must be <= 100, got 500"),
    ({"detector": {"threshold": 1.5}}, "detector.threshold: must be < 1, got 1.5"),
    ({"detector": {"threshold": "high"}}, "detector.threshold: expected a number, got 'high'"),
    ({"detector": {"detectors": {"hst": {"windowsize": 3}}}},
     "detector.detectors.hst.windowsize: unknown key (expected one of: window_size, n_trees)"),
    ({"detectr": {}}, "detectr: unknown key (expected one of: mqtt, influxdb, log, detector)"),
    ({"detector": {"named": {"a": {"trees": 3}}}},  # the key "a" is a name, not a field
     "detector.named.a.trees: unknown key (expected one of: window_size, n_trees)"),
    ({"detector": {"maybe_named": {"n_trees": {"trees": 3}}}},
     "detector.maybe_named.n_trees.trees: unknown key (expected one of: window_size, n_trees)"),
    ({"mqtt": {"port": 70000}}, "mqtt.port: must be <= 65535, got 70000"),
    ({"mqtt": {"qos": 2}}, "mqtt.qos: must be one of 0 or 1, got 2"),
    ({"mqtt": {"topic_prefix": "a/+/b"}}, "mqtt.topic_prefix: must be topic levels"),
    ({"log": {"level": "LOUD"}}, "log.level: must be one of 'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
    ({"influxdb": {"api": "v3"}}, "influxdb.api: must be one of 'v1' or 'v2', got 'v3'"),
    ({"detector": {"detectors": []}}, "detector.detectors: expected a mapping, got []"),
])
def test_errors_name_the_key_path(data: dict, expected: str) -> None:
    errors = errors_of(File, data)
    assert any(line.startswith(expected) for line in errors), errors


def test_every_error_is_reported_not_just_the_first() -> None:
    errors = errors_of(File, {"mqtt": {"port": 0, "qos": 5}, "detector": {"threshold": 2}})
    assert len(errors) == 3


def test_environment_overrides_any_key() -> None:
    env = {"IOTWATCH__MQTT__PORT": "1884", "IOTWATCH__DETECTOR__DETECTORS__HST__WINDOW_SIZE": "64",
           "IOTWATCH__LOG__LEVEL": "DEBUG", "UNRELATED": "x"}
    config = build_config({"mqtt": {"port": 1883}}, File, environ=env)
    assert config.mqtt.port == 1884
    assert config.detector.detectors.hst.window_size == 64
    assert config.log.level == "DEBUG"


def test_environment_override_errors_name_the_variable_and_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({}, File, environ={"IOTWATCH__MQTT__PORT": "many"})
    assert caught.value.errors == [
        "IOTWATCH__MQTT__PORT (environment, sets mqtt.port): expected an integer, got 'many'"]


def test_a_wrong_override_is_not_blamed_on_the_file(tmp_path) -> None:
    path = tmp_path / "detector.yaml"
    path.write_text("mqtt:\n  port: 1883\n  host: [not, a, host]\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, File, environ={"IOTWATCH__MQTT__PORT": "abc",
                                         "IOTWATCH__MQTT__PROT": "1884"})
    lines = str(caught.value).splitlines()
    assert any(line.startswith(f"{path}: mqtt.host:") for line in lines)  # the file's own
    assert "IOTWATCH__MQTT__PORT (environment, sets mqtt.port): expected an integer, got 'abc'" \
        in lines
    assert any(line.startswith("IOTWATCH__MQTT__PROT (environment, sets mqtt.prot): unknown key")
               for line in lines)
    assert not any(line.startswith(str(path)) and "IOTWATCH__" in line for line in lines)


def test_secrets_in_yaml_are_refused_with_the_way_to_set_them() -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({"mqtt": {"password": "hunter2"}}, File, environ={})
    [error] = caught.value.errors
    assert error.startswith("mqtt.password: secrets must not be written in the YAML")
    assert "IOTWATCH__MQTT__PASSWORD" in error and "mqtt.password_file" in error
    assert "hunter2" not in str(caught.value)


def test_secrets_from_environment_and_files(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("s3cret-token\n")
    config = build_config({"influxdb": {"token_file": "token"}}, File,
                          environ={"IOTWATCH__MQTT__PASSWORD": "pw: with yaml chars"},
                          base_dir=tmp_path)
    assert config.mqtt.password.get_secret_value() == "pw: with yaml chars"
    assert config.influxdb.token.get_secret_value() == "s3cret-token"
    assert "s3cret" not in repr(config)


def test_missing_secret_file_is_an_error(tmp_path: Path) -> None:
    errors = errors_of(File, {"mqtt": {"password_file": str(tmp_path / "nope")}})
    assert errors[0].startswith("mqtt.password_file: cannot read secret file")


@pytest.mark.parametrize(("text", "expected"), [
    ("mqtt: [1, 2", "not valid YAML"),
    ("- a\n- b\n", "top level must be a mapping"),
    ("mqtt: {}\n", "expected exactly one service section"),
])
def test_file_level_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert expected in str(caught.value)
    assert str(path) in str(caught.value)


def test_empty_file_uses_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing\n")
    assert load_config(path, File).mqtt.port == 1883
