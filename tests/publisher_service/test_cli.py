"""``iotwatch publish`` options and configuration errors (subprocess, no broker)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .support import PROJECT, fleet, read_csv_rows, run_publisher, write_yaml


def test_the_sample_configuration_and_its_fleet_check_out() -> None:
    result = run_publisher(["--config", "config/publisher.yaml", "--check"], cwd=PROJECT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("config/fleets/hvac-plant.yaml: ok")


@pytest.mark.parametrize(("publisher", "expected"), [
    ({"speed": -1}, "publisher.speed: must be >= 0, got -1"),
    ({"payload": "batch"}, "publisher.payload: must be one of 'single' or 'device'"),
    ({"start": "soon"}, "publisher.start: expected RFC 3339"),
    ({"count": 5, "duration_s": 5}, "set count or duration_s, not both"),
    ({"fleet_file": "missing.yaml"}, "missing.yaml: cannot read fleet file"),
    ({"fleet_file": None}, "publisher.fleet_file: no fleet to run"),
])
def test_configuration_errors_name_the_key(tmp_path: Path, publisher: dict,
                                           expected: str) -> None:
    config = write_yaml(tmp_path / "publisher.yaml",
                        {"publisher": {"fleet_file": "fleet.yaml", **publisher}})
    write_yaml(tmp_path / "fleet.yaml", fleet())
    result = run_publisher(["--config", str(config), "--check"], cwd=tmp_path)
    assert result.returncode == 2
    assert expected in result.stderr, result.stderr


def test_fleet_errors_name_the_file_and_key(tmp_path: Path) -> None:
    data = fleet()
    data["templates"]["pump"]["metrics"]["power"]["noise"] = "loud"
    write_yaml(tmp_path / "fleet.yaml", data)
    result = run_publisher(["--fleet", "fleet.yaml", "--check"], cwd=tmp_path)
    assert result.returncode == 2
    assert ("fleet.yaml: templates.pump.metrics.power.noise: expected a number, got 'loud'"
            in result.stderr)


def test_options_are_checked_like_the_keys_they_override(tmp_path: Path) -> None:
    write_yaml(tmp_path / "fleet.yaml", fleet())
    result = run_publisher(["--fleet", "fleet.yaml", "--start", "never", "--check"],
                           cwd=tmp_path)
    assert result.returncode == 2 and "command line: start: expected RFC 3339" in result.stderr
    result = run_publisher(["--fleet", "fleet.yaml", "--count", "3", "--duration", "9"],
                           cwd=tmp_path)
    assert result.returncode == 2 and "not allowed with argument" in result.stderr
    result = run_publisher(["--fleet", "fleet.yaml", "--speed", "fast"], cwd=tmp_path)
    assert result.returncode == 2 and "expected a number or max" in result.stderr


def test_environment_overrides_and_options_win_over_the_file(tmp_path: Path) -> None:
    write_yaml(tmp_path / "fleet.yaml", fleet())
    config = write_yaml(tmp_path / "publisher.yaml", {"publisher": {
        "fleet_file": "fleet.yaml", "count": 5, "start": "2026-02-01T00:00:00Z"}})
    result = run_publisher(["--config", str(config), "--out", "a"], cwd=tmp_path,
                           env={"IOTWATCH__PUBLISHER__COUNT": "3"})
    assert result.returncode == 0, result.stderr
    rows = read_csv_rows(tmp_path / "a" / "readings.csv")
    assert len(rows) == 5 * 3 and rows[0][0] == "2026-02-01T00:00:00.000Z"
    result = run_publisher(["--config", str(config), "--out", "b", "--count", "2",
                            "--start", "2026-03-01T00:00:00Z"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = read_csv_rows(tmp_path / "b" / "readings.csv")
    assert len(rows) == 5 * 2 and rows[0][0] == "2026-03-01T00:00:00.000Z"


def test_iotwatch_publish_is_the_same_command(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "iotwatch.cli", "publish", "--help"],
                            capture_output=True, text=True, cwd=tmp_path, check=False)
    assert result.returncode == 0
    for option in ("--fleet", "--replay", "--seed", "--count", "--duration", "--speed",
                   "--out", "--payload", "--start"):
        assert option in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--out", "afile/sub"], "iotwatch publish: --out afile/sub: afile is a file; expected a "
     "directory"),
    (["--labels", "afile/labels.jsonl"], "iotwatch publish: --labels afile/labels.jsonl: afile "
     "is a file; expected a directory"),
    (["--replay", "tone.wav", "--out", "o"], "iotwatch publish: tone.wav: not a text file"),
])
def test_unusable_paths_give_one_line_and_exit_2(tmp_path: Path, args: list[str],
                                                 message: str) -> None:
    write_yaml(tmp_path / "fleet.yaml", fleet())
    (tmp_path / "afile").write_text("a file\n")
    (tmp_path / "tone.wav").write_bytes(b"RIFF\x24\x08\x00\x00WAVEfmt \x10\x00\xff\xfe\x00")
    if "--replay" not in args:
        args = ["--fleet", "fleet.yaml", "--count", "2", "--start", "2026-01-20T00:00:00Z",
                *args]
    result = run_publisher(args, cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(message) and "expected" in line
