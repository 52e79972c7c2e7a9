"""``iotwatch dashboard`` as a command: reads where the detector's config says, serves the
page, and answers a bad configuration or a taken port with one line and exit 2."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request

import yaml
from harness import free_port, wait_until

from iotwatch.cli import main


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read()
    except OSError:
        return None


def test_the_command_serves_the_points_file_the_detector_config_names(tmp_path):
    points = tmp_path / "points.lp"
    points.write_text("readings,site=s,device=d,metric=m value=1.0,score=0.1,threshold=0.65,"
                      "anomaly=0i 1768905000000\n", encoding="utf-8")
    config = tmp_path / "detector.yaml"
    config.write_text(yaml.safe_dump({"http": {"port": free_port()}, "detector": {
        "output": {"sink": "file", "file": str(points)}}}), encoding="utf-8")
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "iotwatch.cli", "dashboard", "-c",
                                str(config), "--port", str(port), "--alerting", "none"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        url = f"http://127.0.0.1:{port}/"
        page = wait_until(lambda: _get(url), 60, what="the dashboard page")
        assert b"<title>iotwatch</title>" in page
        layout = json.loads(_get(url + "_dash-layout"))
        assert f"line-protocol file {points}" in json.dumps(layout)
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert f"iotwatch dashboard: http://127.0.0.1:{port}/" in output


def test_a_bad_config_is_one_line_and_exit_2(tmp_path, capsys):
    config = tmp_path / "detector.yaml"
    config.write_text("influxdb:\n  api: v9\n", encoding="utf-8")
    assert main(["dashboard", "-c", str(config)]) == 2
    assert capsys.readouterr().err.startswith(f"{config}: influxdb.api: ")


def test_a_taken_port_is_one_line_and_exit_2(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["dashboard", "--points-file", str(tmp_path / "p.lp"), "--port", str(port),
                     "-c", str(_empty_config(tmp_path))])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"iotwatch dashboard: cannot serve on 127.0.0.1:{port}: ")
    assert err.count("\n") == 1


def _empty_config(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("{}\n", encoding="utf-8")
    return path


def test_a_broker_that_cannot_be_reached_for_dead_letters_is_one_line_and_exit_2(tmp_path,
                                                                                  capsys):
    port = free_port()
    config = tmp_path / "detector.yaml"
    config.write_text(yaml.safe_dump({"mqtt": {"port": port}}), encoding="utf-8")
    assert main(["dashboard", "-c", str(config), "--mqtt", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"iotwatch dashboard: cannot connect to MQTT broker at 127.0.0.1:{port}")
    assert err.count("\n") == 1
