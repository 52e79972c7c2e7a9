"""Evicted streams on disk: one file per stream, written atomically, beside the checkpoint.

When the detector evicts a long-idle stream (``detector.streamlimit``) its complete
engine state goes here first; when the stream comes back it is loaded again, so it
scores exactly as if it had never left.

>>> import tempfile
>>> store = StreamStore(Path(tempfile.mkdtemp()) / "evicted")
>>> store.save("s/d/temperature", b"state"); "s/d/temperature" in store, len(store)
(True, 1)
>>> store.load("s/d/temperature"), store.load("s/d/humidity")
(b'state', None)
>>> store.delete("s/d/temperature"); len(store)
0
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

from detector.checkpoint import CheckpointFile


class StreamStore:
    """``site/device/metric`` -> that stream's engine state, as files under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        try:
            self._keys = {path.stem for path in self.directory.glob("*.bin")}
        except OSError:
            self._keys = set()

    @staticmethod
    def _name(key: str) -> str:
        # Stream names are [A-Za-z0-9_.-] but 3 x 64 characters: a hash keeps names short.
        return hashlib.sha256(key.encode()).hexdigest()[:32]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._name(key) in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def save(self, key: str, data: bytes) -> None:
        """Durable on return (write, fsync, rename, fsync directory)."""
        name = self._name(key)
        CheckpointFile(self.directory / f"{name}.bin").save(data)
        self._keys.add(name)

    def load(self, key: str) -> bytes | None:
        name = self._name(key)
        if name not in self._keys:
            return None
        return CheckpointFile(self.directory / f"{name}.bin").load()

    def delete(self, key: str) -> None:
        name = self._name(key)
        with contextlib.suppress(FileNotFoundError):
            (self.directory / f"{name}.bin").unlink()
        self._keys.discard(name)
