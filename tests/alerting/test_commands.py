"""The command lines: ``iotwatch alert --check`` and ``python -m alerting.catchers``."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import orjson
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
