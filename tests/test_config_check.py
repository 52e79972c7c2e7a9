"""`iotwatch config check`: every sample config passes, every broken one names key and reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from iotwatch.cli import main

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "config").glob("*.yaml"))
BROKEN = sorted((ROOT / "tests" / "configs" / "broken").glob("*.yaml"))


def expected_line(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: ...'"
    return first.removeprefix("# expect: ")


def test_there_is_a_sample_per_service() -> None:
    assert {p.stem for p in SAMPLES} >= {"detector"}


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample_configs_are_valid(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: ok\n"


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.name)
def test_broken_configs_name_key_and_reason(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(path)]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith(f"{path}: {expected_line(path)}") for line in lines), lines


def test_every_error_of_every_file_is_printed_and_exit_is_2() -> None:
    files = [str(p) for p in [*SAMPLES, *BROKEN]]
    done = subprocess.run([sys.executable, "-m", "iotwatch.cli", "config", "check", *files],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    errors = [line for line in done.stdout.splitlines() if not line.endswith(": ok")]
    assert len(errors) >= len(BROKEN)
    assert all(line.split(": ", 1)[0] in files for line in done.stdout.splitlines())


def test_missing_file_is_reported() -> None:
    done = subprocess.run([sys.executable, "-m", "iotwatch.cli", "config", "check", "/nonexistent.yaml"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stdout.strip() == "/nonexistent.yaml: cannot read file: No such file or directory"


def test_every_command_and_action_describes_itself_in_its_help():
    import argparse

    from iotwatch.cli import build_parser

    def walk(parser: argparse.ArgumentParser, path: str):
        yield path, parser
        for action in parser._actions:  # noqa: SLF001 - argparse has no public walk
            if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
                for name, sub in action.choices.items():
                    yield from walk(sub, f"{path} {name}")

    undescribed = [path for path, parser in walk(build_parser(), "iotwatch")
                   if not (parser.description or "").strip()]
    assert undescribed == []
