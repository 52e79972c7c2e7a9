"""Every command checks the paths it will write before it starts: one line, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]


def iotwatch(args: list[str], cwd: Path, env: dict[str, str] | None = None):
    return subprocess.run([sys.executable, "-m", "iotwatch.cli", *args], cwd=cwd,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("SPOOL__DIR", "afile/spool", "detector.spool.dir afile/spool: afile is a file"),
    ("CHECKPOINT__PATH", "afile/c.bin", "detector.checkpoint.path afile/c.bin: afile is a file"),
    ("CHECKPOINT__PATH", ".", "detector.checkpoint.path .: is a directory; expected a file"),
])
def test_detect_checks_its_state_paths_first(tmp_path, key, value, message):
    (tmp_path / "afile").write_text("a file\n")
    result = iotwatch(["detect", "--config", str(PROJECT / "config" / "detector.yaml")],
                      tmp_path, {f"IOTWATCH__DETECTOR__{key}": value})
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"iotwatch detect: {message}")


def test_alert_checks_its_database_path_first(tmp_path):
    (tmp_path / "afile").write_text("a file\n")
    result = iotwatch(["alert", "--config", str(PROJECT / "config" / "alerting.yaml")],
                      tmp_path, {"IOTWATCH__ALERTING__DATABASE": "afile/alerting.sqlite3"})
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("iotwatch alert: alerting.database afile/alerting.sqlite3: afile is "
                           "a file; expected a directory")


def test_the_fatal_start_up_error_is_json_when_json_logs_are_asked_for(tmp_path):
    import json

    (tmp_path / "afile").write_text("a file\n")
    result = iotwatch(["detect", "--config", str(PROJECT / "config" / "detector.yaml")],
                      tmp_path, {"IOTWATCH__DETECTOR__SPOOL__DIR": "afile/spool",
                                 "IOTWATCH__LOG__FORMAT": "json"})
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    record = json.loads(line)
    assert record["level"] == "critical" and record["service"] == "detector"
    assert record["msg"].startswith("detector.spool.dir afile/spool: afile is a file")
    assert record["ts"].endswith("Z")
