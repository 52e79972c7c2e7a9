"""Child processes of the demo: started in their own process groups, stopped without strays.

Each child leads its own process group, so stopping it reaches anything it started too
(terminate, wait, then kill). On Linux each child also gets SIGTERM if the demo itself dies
without cleaning up (``PR_SET_PDEATHSIG``), so even ``kill -9`` of the demo leaves nothing
running for long.

>>> import sys
>>> with ProcessGroup() as group:
...     child = group.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])
...     child.running()
True
>>> child.running()
False
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    log_path: Path | None

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the child wrote (stdout and stderr go to one log file)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


class ProcessGroup:
    """Starts children and stops them all, newest first, on ``stop()`` or leaving ``with``."""

    def __init__(self, log_dir: Path | None = None, grace_s: float = 10.0) -> None:
        self.log_dir = log_dir
        self.grace_s = grace_s
        self.children: list[Child] = []

    def start(self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
              cwd: Path | None = None) -> Child:
        log_path = None if self.log_dir is None else self.log_dir / f"{name}.log"
        output = subprocess.DEVNULL if log_path is None else open(log_path, "ab")  # noqa: SIM115
        try:
            process = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                env=None if env is None else dict(env), cwd=cwd, start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        finally:
            if output is not subprocess.DEVNULL:
                output.close()
        child = Child(name, process, log_path)
        self.children.append(child)
        return child

    def stop(self) -> None:
        """SIGTERM each child's group, newest first; SIGKILL what is left after the grace."""
        for child in reversed(self.children):
            stop_child(child, self.grace_s)

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def stop_child(child: Child, grace_s: float) -> None:
    """Terminate ``child`` and its process group; kill them if they outlive ``grace_s``."""
    _signal_group(child.pid, signal.SIGTERM)
    try:
        child.process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        _signal_group(child.pid, signal.SIGKILL)
        child.process.wait(timeout=grace_s)
    # The leader is gone; anything it started that ignored SIGTERM goes now.
    deadline = time.monotonic() + 1.0
    while _group_alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    _signal_group(child.pid, signal.SIGKILL)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: ask the kernel for SIGTERM when the demo dies.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
