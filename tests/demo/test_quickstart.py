"""The quickstart (``sh scripts/demo.sh``) from a fresh copy: the first screen is the demo's."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
SKIP = {".venv", ".git", "build", "data", "__pycache__", ".pytest_cache", ".ruff_cache"}


def fresh_copy(target: Path) -> Path:
    shutil.copytree(PROJECT, target, ignore=lambda _dir, names: [
        n for n in names if n in SKIP or n.endswith(".egg-info")])
    return target


@pytest.mark.slow
def test_quickstart_install_prints_no_setuptools_box(tmp_path):
    clone = fresh_copy(tmp_path / "iotwatch")
    result = subprocess.run(["sh", "scripts/demo.sh", "--help"], cwd=clone, capture_output=True,
                            text=True, timeout=900, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "usage: iotwatch demo" in result.stdout
    for noise in ("Editable installation", "********", "!!", "WARNING"):
        assert noise not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines[0].startswith("demo.sh: installing iotwatch into .venv"), output
