"""``iotwatch demo`` as a user runs it: a subprocess, its summary, its exit status, and no
process left behind afterwards (found by an environment marker every child inherits)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from iotwatch.demo.configs import demo_fleet

MARKER = "IOTWATCH_DEMO_TEST_MARK"
RUN_TIMEOUT_S = 300


def start_demo(*args: str) -> tuple[subprocess.Popen[str], str]:
    mark = uuid.uuid4().hex
    env = {**os.environ, MARKER: mark, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "iotwatch.cli", "demo", "--no-live", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env, start_new_session=True)
    return process, mark


def marked_processes(mark: str) -> list[str]:
    """Command lines of live processes whose environment carries ``mark``."""
    needle = f"{MARKER}={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


def assert_nothing_left(mark: str) -> None:
    deadline = time.monotonic() + 15
    while marked_processes(mark) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marked_processes(mark) == [], "processes left behind"


def kill_marked(mark: str) -> None:
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and f"{MARKER}={mark}".encode() in (
                    entry / "environ").read_bytes().split(b"\0"):
                os.kill(int(entry.name), signal.SIGKILL)
        except OSError:
            continue


@pytest.mark.slow
def test_demo_detects_every_fault_and_delivers_every_alert():
    process, mark = start_demo("--duration", "45")
    try:
        output, _ = process.communicate(timeout=RUN_TIMEOUT_S)
        assert_nothing_left(mark)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        kill_marked(mark)
    assert process.returncode == 0, output
    assert "RESULT: PASS" in output
    scheduled = demo_fleet(45)["faults"]["scheduled"]
    faults = len(scheduled)
    garbage = sum(1 for f in scheduled if f["kind"] == "garbage")
    assert (f"faults injected: {faults}   detected: {faults - garbage}   rejected: {garbage}   "
            "missed: 0") in output, output
    # Delays are measured: each detection says how long the alert took after the reading.
    waits = [float(n) / (1000 if unit == "ms" else 1) for n, unit in
             re.findall(r"alert (\d+(?:\.\d+)?) (ms|s) after that reading", output)]
    assert len(waits) == faults - garbage and all(w < 30 for w in waits), output
    published = int(re.search(r"alert notifications expected .*: (\d+)", output)[1])
    assert published >= faults - 1       # at least a firing per alerted fault
    assert f"email    delivered {published}/{published}" in output, output
    assert f"webhook  delivered {published}/{published}" in output, output
    assert re.search(r"points stored: .*readings \d+", output), output
    assert "received: webhook firing" in output and "signature ok" in output


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_demo_stops_everything_when_interrupted(signum):
    # The fallbacks (embedded broker, file store) start here too.
    process, mark = start_demo("--duration", "60", "--embedded-broker", "--file-store")
    lines: list[str] = []
    publishing = threading.Event()

    def read() -> None:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("publisher:"):
                publishing.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert publishing.wait(120), "".join(lines)
        assert len(marked_processes(mark)) >= 4     # demo, broker, detector, alerting, ...
        process.send_signal(signum)
        assert process.wait(60) == 130, "".join(lines)
        reader.join(10)
        assert_nothing_left(mark)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        kill_marked(mark)
    assert "RESULT" not in "".join(lines)
