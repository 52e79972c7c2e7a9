"""The command lines: ``iotwatch alert --check`` and ``python -m alerting.catchers``."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import orjson
import yaml
from harness import free_port, wait_until

PROJECT = Path(__file__).resolve().parents[2]


def test_alert_check_validates_the_sample_configuration():
    result = subprocess.run([sys.executable, "-m", "alerting", "--config",
                             "config/alerting.yaml", "--check"], cwd=PROJECT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "ok (ops_email/email, ops_webhook/webhook)" in result.stdout


def test_alert_reports_a_bad_configuration_by_key(tmp_path):
    bad = tmp_path / "alerting.yaml"
    bad.write_text("alerting:\n  route: {receiver: ops, group_wait_s: soon}\n  receivers:\n"
                   "    ops: {webhook: {url: 'http://h/'}}\n")
    result = subprocess.run([sys.executable, "-m", "alerting", "--config", str(bad)],
                            cwd=PROJECT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "alerting.route.group_wait_s: expected a number, got 'soon'" in result.stderr


def test_the_webhook_catcher_prints_what_it_receives(tmp_path):
    port = free_port()
    out = tmp_path / "out.txt"
    with open(out, "wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "alerting.catchers", "webhook",
                                    "--port", str(port), "--json"], cwd=PROJECT, stdout=sink,
                                   stderr=subprocess.DEVNULL)
    try:
        def post() -> bool:
            try:
                body = orjson.dumps({"status": "firing",
                                     "alerts": [{"fingerprint": "f1", "status": "firing"}]})
                request = urllib.request.Request(f"http://127.0.0.1:{port}/hook", data=body,
                                                 headers={"Idempotency-Key": "k1"})
                return urllib.request.urlopen(request, timeout=2).status == 200
            except OSError:
                return False
        wait_until(post, timeout=30, what="the catcher to answer")
        line = wait_until(lambda: out.read_text().strip(), timeout=10, what="its output")
    finally:
        process.terminate()
        process.wait(10)
    printed = orjson.loads(line.splitlines()[0])
    assert printed == {"kind": "webhook", "status": 200, "path": "/hook", "key": "k1",
                       "signature_ok": None, "alerts": [["f1", "firing"]]}


def test_alert_help_offers_c_and_names_the_environment_overrides():
    result = subprocess.run([sys.executable, "-m", "iotwatch.cli", "alert", "--help"],
                            cwd=PROJECT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--config FILE, -c FILE" in result.stdout
    assert "IOTWATCH__<SECTION>__<KEY>" in " ".join(result.stdout.split())


def _dir(parent: Path, name: str) -> Path:
    (parent / name).mkdir()
    return parent / name


def _start_with_password(mosquitto, tmp_path: Path, password: str | None):
    config = tmp_path / "alerting.yaml"
    config.write_text(yaml.safe_dump({
        "mqtt": mosquitto.mqtt_section("alerting", client_id=f"t-{tmp_path.name}"),
        "http": {"enabled": False},
        "alerting": {"database": str(tmp_path / "a.sqlite3"), "route": {"receiver": "ops"},
                     "receivers": {"ops": {"webhook": {"url": "http://127.0.0.1:9/hook"}}}}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTWATCH__")}
    if password is not None:
        env["IOTWATCH__MQTT__PASSWORD"] = password
    return subprocess.run([sys.executable, "-m", "alerting", "-c", str(config)], cwd=PROJECT,
                          capture_output=True, text=True, timeout=60, env=env)


def test_a_missing_and_a_wrong_mqtt_password_are_told_apart(mosquitto, tmp_path):
    missing = _start_with_password(mosquitto, _dir(tmp_path, "missing"), None)
    wrong = _start_with_password(mosquitto, _dir(tmp_path, "wrong"), "not-the-password")
    assert (missing.returncode, wrong.returncode) == (1, 1)
    assert "no password is set for user 'alerting'" in missing.stderr
    assert "IOTWATCH__MQTT__PASSWORD" in missing.stderr
    assert "the password of user 'alerting' is wrong" in wrong.stderr
    assert missing.stderr.strip().splitlines()[-1] != wrong.stderr.strip().splitlines()[-1]
