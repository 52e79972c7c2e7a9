"""Run one server process and take it down with us: ``python _guard.py ARGV...``.

The harness starts every server through this guard with a pipe on its stdin. When the
test process dies in any way (even SIGKILL, when no finalizer or atexit hook runs) the
pipe reaches end-of-file and the guard terminates the server, so no server outlives
the test session. SIGTERM/SIGINT sent to the guard are forwarded to the server and
the guard exits once the server has, so "stop" means "stopped and its files saved".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

GRACE_S = 20.0


def main(argv: list[str]) -> int:
    server = subprocess.Popen(argv, stdin=subprocess.DEVNULL)

    def forward(signum: int, _frame: object) -> None:
        server.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)

    def stop_when_parent_gone() -> None:
        # Unbuffered reads: a daemon thread blocked in sys.stdin would hold its lock
        # at interpreter shutdown. An empty read is EOF: the test process is gone.
        while os.read(0, 4096):
            pass
        server.terminate()
        try:
            server.wait(GRACE_S)
        except subprocess.TimeoutExpired:
            server.kill()

    threading.Thread(target=stop_when_parent_gone, daemon=True).start()
    code = server.wait()
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    # os._exit: nothing to clean up, and no waiting for the stdin thread.
    os._exit(main(sys.argv[1:]))
