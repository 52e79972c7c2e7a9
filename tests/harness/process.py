"""Server processes for tests: binaries, readiness polling, sure teardown.

Free ports and polling come from ``iotwatch.ports`` (shared with the demo) and are
re-exported here as part of the harness's API.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from iotwatch.ports import free_port, port_open, wait_until

__all__ = ["HarnessError", "ServerProcess", "find_binary", "free_port", "http_ready",
           "port_open", "wait_until"]


GUARD = Path(__file__).with_name("_guard.py")
STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
LOG_TAIL_CHARS = 4000

# Where Debian puts server binaries: /usr/sbin is not on a normal user's PATH.
_SYSTEM_DIRS = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/sbin")


class HarnessError(RuntimeError):
    """A test server could not be found, started, reached or used."""


def http_ready(url: str, expect: Sequence[int] = (200, 204)) -> bool:
    """True when GET ``url`` answers with one of the ``expect`` status codes."""
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:
            return response.status in expect
    except (urllib.error.URLError, OSError):
        return False


def find_binary(name: str, debian_package: str) -> str:
    """Absolute path of a server binary; a clear error naming the package if missing."""
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SYSTEM_DIRS))
    if found is None:
        raise HarnessError(
            f"{name} is not installed (looked on PATH and in {', '.join(_SYSTEM_DIRS)}); "
            f"the tests need a real server: apt-get install {debian_package}")
    return found


class ServerProcess:
    """One server binary run by the tests, with its log in ``log_path``.

    ``ready`` is polled after each start until it returns True. The process runs under
    a guard (see _guard.py) so it cannot outlive the test process.
    """

    def __init__(self, name: str, argv: Sequence[str], log_path: Path,
                 ready: Callable[[], bool], cwd: Path | None = None,
                 startup_timeout: float = STARTUP_TIMEOUT_S) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = Path(log_path)
        self.ready = ready
        self.cwd = cwd
        self.startup_timeout = startup_timeout
        self._guard: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<ServerProcess {self.name} {state}, log {self.log_path}>"

    def is_running(self) -> bool:
        return self._guard is not None and self._guard.poll() is None

    def start(self) -> None:
        """Start the server and wait until it is ready; on failure show its log."""
        if self.is_running():
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== harness: starting {' '.join(self.argv)}\n".encode())
            log.flush()
            self._guard = subprocess.Popen(
                [sys.executable, str(GUARD), *self.argv], stdin=subprocess.PIPE,
                stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd,
                start_new_session=True)  # own process group: Ctrl-C is ours to forward
        _LIVE.add(self)
        deadline = time.monotonic() + self.startup_timeout
        while not self.ready():
            if not self.is_running():
                code = self._guard.returncode
                self._guard = None
                raise HarnessError(f"{self.name} exited with code {code} during start-up\n"
                                   f"{self.log_tail()}")
            if time.monotonic() >= deadline:
                self.stop()
                raise HarnessError(f"{self.name} not ready after {self.startup_timeout:g}s\n"
                                   f"{self.log_tail()}")
            time.sleep(0.05)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop gracefully (SIGTERM, so servers save their state); kill after ``timeout``."""
        guard, self._guard = self._guard, None
        _LIVE.discard(self)
        if guard is None:
            return
        if guard.poll() is None:
            guard.send_signal(signal.SIGTERM)
            try:
                guard.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(guard.pid, signal.SIGKILL)
                guard.wait()
        if guard.stdin is not None:
            guard.stdin.close()

    def close(self) -> None:
        """Stop for good (the fixtures' teardown)."""
        self.stop()

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        """The end of the server's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"(no log at {self.log_path})"
        tail = text[-chars:]
        return f"--- last {len(tail)} chars of {self.log_path} ---\n{tail}"


_LIVE: set[ServerProcess] = set()


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop(timeout=10)
