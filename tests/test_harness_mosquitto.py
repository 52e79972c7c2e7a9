"""The broker configuration the tests run is the project's own, and its scripts behave."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from harness import Credentials, HarnessError
from harness.mosquitto import MOSQUITTO_DIR, PROJECT_CONF, render_config, start_local_broker

PATHS = {"password_file": "/t/passwd", "acl_file": "/t/acl", "persistence_location": "/t/data/",
         "cafile": "/t/ca.crt", "certfile": "/t/server.crt", "keyfile": "/t/server.key"}
ROLE_ENV = {"MQTT_PUBLISHER_PASSWORD": "p1", "MQTT_DETECTOR_PASSWORD": "p2",
            "MQTT_ALERTING_PASSWORD": "p3", "MQTT_MONITOR_PASSWORD": "p4"}


def _options(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_rendering_changes_only_listeners_and_paths():
    original = _options(PROJECT_CONF.read_text())
    rendered = _options(render_config(PROJECT_CONF.read_text(), ports={1883: 2001, 8883: 2002},
                                      paths=PATHS, host="127.0.0.1"))

    assert len(rendered) == len(original)
    changed = {(a, b) for a, b in zip(original, rendered, strict=True) if a != b}
    assert {b for _, b in changed} == {"listener 2001 127.0.0.1", "listener 2002 127.0.0.1",
                                       *(f"{k} {v}" for k, v in PATHS.items())}


@pytest.mark.parametrize("setting", [
    "per_listener_settings false", "allow_anonymous false", "persistence true",
    "set_tcp_nodelay true", "max_queued_messages 1000000", "max_queued_bytes 0",
    "max_inflight_messages 1000", "tls_version tlsv1.2",
])
def test_project_config_has(setting):
    assert setting in _options(PROJECT_CONF.read_text())


def test_tls_settings_follow_the_tls_listener():
    options = [line.split()[0] for line in _options(PROJECT_CONF.read_text())]
    tls_listener = options.index("listener", options.index("listener") + 1)
    for option in ("cafile", "certfile", "keyfile", "tls_version"):
        assert options.index(option) > tls_listener, f"{option} must follow listener 8883"


def test_rendering_fails_loudly_when_the_project_file_changes_shape():
    with pytest.raises(HarnessError, match="no longer has acl_file"):
        render_config("listener 1883\n", ports={1883: 1}, paths={"acl_file": "/x"},
                      host="127.0.0.1")
    with pytest.raises(HarnessError, match="listener 9001 is not known"):
        render_config("listener 9001\n", ports={1883: 1}, paths={}, host="127.0.0.1")


def _make_passwd(output: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MQTT_")}
    return subprocess.run([str(MOSQUITTO_DIR / "make-passwd.sh"), str(output)],
                          env={**clean, **env}, capture_output=True, text=True, check=False)


def _users(password_file: Path) -> list[str]:
    return [line.split(":", 1)[0] for line in password_file.read_text().splitlines()]


def test_make_passwd_names_every_missing_variable(tmp_path):
    result = _make_passwd(tmp_path / "passwd", MQTT_PUBLISHER_PASSWORD="p1")

    assert result.returncode != 0
    for name in ("MQTT_DETECTOR_PASSWORD", "MQTT_ALERTING_PASSWORD", "MQTT_MONITOR_PASSWORD"):
        assert name in result.stderr
    assert "MQTT_PUBLISHER_PASSWORD" not in result.stderr
    assert not (tmp_path / "passwd").exists()


def test_make_passwd_rebuilds_the_file_from_the_environment(tmp_path):
    output = tmp_path / "passwd"
    assert _make_passwd(output, **ROLE_ENV, MQTT_SENSORS="dev-1:a dev-2:b").returncode == 0
    assert _users(output) == ["publisher", "detector", "alerting", "monitor", "dev-1", "dev-2"]
    assert output.stat().st_mode & 0o777 == 0o600

    assert _make_passwd(output, **ROLE_ENV, MQTT_SENSORS="dev-2:b").returncode == 0
    assert _users(output) == ["publisher", "detector", "alerting", "monitor", "dev-2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["passwd"]  # no temporary left


@pytest.mark.parametrize(("sensors", "message"), [
    ("dev-1", "must be DEVICE:PASSWORD"),
    ("dev/1:pw", "must match"),
    ("detector:pw", "service role name"),
])
def test_make_passwd_rejects_bad_sensor_entries(tmp_path, sensors, message):
    result = _make_passwd(tmp_path / "passwd", **ROLE_ENV, MQTT_SENSORS=sensors)
    assert result.returncode != 0
    assert message in result.stderr


def test_make_dev_certs_is_idempotent_and_valid_for_loopback(tmp_path):
    script = str(MOSQUITTO_DIR / "make-dev-certs.sh")
    subprocess.run([script, str(tmp_path)], check=True, capture_output=True)
    first = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    subprocess.run([script, str(tmp_path)], check=True, capture_output=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == first

    for name in ("server", "client"):
        subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "ca.crt"),
                        str(tmp_path / f"{name}.crt")], check=True, capture_output=True)
    text = subprocess.run(["openssl", "x509", "-in", str(tmp_path / "server.crt"), "-noout",
                           "-ext", "subjectAltName"], check=True, capture_output=True,
                          text=True).stdout
    assert "DNS:localhost" in text and "IP Address:127.0.0.1" in text
    for key in ("ca.key", "server.key", "client.key"):
        assert (tmp_path / key).stat().st_mode & 0o777 == 0o600

    (tmp_path / "server.crt").unlink()
    subprocess.run([script, str(tmp_path)], check=True, capture_output=True)
    assert (tmp_path / "ca.crt").read_bytes() == first["ca.crt"]  # CA kept, server re-issued
    subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "ca.crt"),
                    str(tmp_path / "server.crt")], check=True, capture_output=True)


def test_broker_refuses_to_start_is_reported_with_its_log(tmp_path, mqtt_credentials):
    """A broker that cannot start fails the fixture with Mosquitto's own words."""
    broken = Credentials(mqtt_credentials.passwords,
                         password_file=tmp_path / "missing-passwd",
                         cert_dir=mqtt_credentials.cert_dir)
    with pytest.raises(HarnessError, match="(?s)exited with code.*password file"):
        start_local_broker(tmp_path / "broker", broken)
