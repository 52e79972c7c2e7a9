"""State kept beside the engine's checkpoint: ``<checkpoint>.<name>`` per part.

Forecasts and summaries snapshot themselves; the worker saves checkpoints through
``save(engine_bytes)``, and wrapped, the same call writes every part too (on the
worker's thread, the only one that changes them), so all files are equally recent.

>>> import tempfile
>>> from detector.summaries.settings import SummarySettings
>>> from detector.summaries.streams import StreamSummaries
>>> path = Path(tempfile.mkdtemp()) / "checkpoint.bin"
>>> summaries = restore_part(StreamSummaries(SummarySettings(enabled=True)), path, "summaries")
>>> _ = summaries.observe("s", "d", "m", 0.0, 1.0, anomaly=False, alert=False)
>>> WithSideStates(CheckpointFile(path), {"summaries": summaries}).save(b"engine")
>>> len(restore_part(StreamSummaries(SummarySettings(enabled=True)), path, "summaries"))
1
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol, TypeVar

from detector.checkpoint import CheckpointFile

log = logging.getLogger(__name__)


class Part(Protocol):
    def snapshot(self) -> bytes: ...
    def restore(self, data: bytes) -> int: ...


P = TypeVar("P", bound=Part)


def side_path(checkpoint: Path, name: str) -> Path:
    return Path(checkpoint).with_name(f"{Path(checkpoint).name}.{name}")


def restore_part(part: P, checkpoint: Path, name: str) -> P:
    """``part`` loaded from its file beside ``checkpoint`` (as it is when there is none)."""
    store = CheckpointFile(side_path(checkpoint, name))
    data = store.load()
    if data is None:
        return part
    try:
        restored = part.restore(data)
    except Exception as exc:  # an unreadable file must not stop the service
        moved = store.set_aside()
        log.error("%s checkpoint %s unreadable (%s); moved to %s, starting afresh", name,
                  store.path, exc, moved)
        return type(part)(part.settings)  # type: ignore[attr-defined,call-arg]
    log.info("restored %s of %d streams from %s", name, restored, store.path)
    return part


class WithSideStates:
    """A CheckpointFile whose ``save`` also writes each part's state beside it."""

    def __init__(self, engine: CheckpointFile, parts: dict[str, Part]) -> None:
        self.engine = engine
        self.path = engine.path
        self.parts = {name: (part, CheckpointFile(side_path(engine.path, name)))
                      for name, part in parts.items()}

    def load(self) -> bytes | None:
        return self.engine.load()

    def set_aside(self) -> Path:
        return self.engine.set_aside()

    def save(self, data: bytes) -> None:
        self.engine.save(data)
        for part, store in self.parts.values():
            store.save(part.snapshot())
