"""Loopback ports and polling: free ports for local servers, waiting until they answer.

Used by the demo, the local catchers and the test harness.

>>> port = free_port()
>>> 1024 < port < 65536, port_open("127.0.0.1", port)
(True, False)
>>> wait_until(lambda: 42, timeout=1, what="the answer")
42
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now on ``host`` (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def wait_until(predicate: Callable[[], T], timeout: float = 30.0, *, interval: float = 0.05,
               what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy; return that value.

    Raises TimeoutError naming ``what`` after ``timeout`` seconds. Use generous
    timeouts: they cost nothing when things work and the machine may be loaded.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def wait_for_port(host: str, port: int, timeout_s: float, alive=lambda: True) -> bool:
    """Poll until host:port accepts connections, ``alive()`` turns false, or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_open(host, port):
            return True
        if not alive():
            return False
        time.sleep(0.1)
    return False
