"""Engine snapshots on disk, replaced atomically (write, fsync, rename, fsync directory).

>>> import tempfile
>>> store = CheckpointFile(Path(tempfile.mkdtemp()) / "state" / "checkpoint.bin")
>>> store.load() is None
True
>>> store.save(b"state-1"); store.save(b"state-2"); store.load()
b'state-2'
"""

from __future__ import annotations

import os
import time
from pathlib import Path


class CheckpointFile:
    """One file holding the latest snapshot; a crash mid-save leaves the previous one."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def save(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def set_aside(self, clock=time.time) -> Path:
        """Move an unreadable checkpoint out of the way (kept for inspection)."""
        target = self.path.with_name(f"{self.path.name}.unreadable-{int(clock())}")
        os.replace(self.path, target)
        return target
