"""The forecasts' state beside the engine's checkpoint: ``<checkpoint>.forecast``.

The worker saves checkpoints through ``save(engine_bytes)``; wrapped, the same call
also writes the forecasters and early-warning states (on the worker's thread, the only
one that changes them), so both files are as recent as each other.

>>> import tempfile
>>> from detector.forecast.settings import ForecastSettings
>>> path = Path(tempfile.mkdtemp()) / "checkpoint.bin"
>>> forecasts = restore_forecasts(ForecastSettings(enabled=True), path)
>>> _ = forecasts.observe("s", "d", "m", 0.0, 1.0)
>>> WithForecasts(CheckpointFile(path), forecasts).save(b"engine")
>>> len(restore_forecasts(ForecastSettings(enabled=True), path))
1
"""

from __future__ import annotations

import logging
from pathlib import Path

from detector.checkpoint import CheckpointFile
from detector.forecast.settings import ForecastSettings
from detector.forecast.streams import StreamForecasts

log = logging.getLogger(__name__)


def forecast_path(checkpoint: Path) -> Path:
    return Path(checkpoint).with_name(Path(checkpoint).name + ".forecast")


def restore_forecasts(settings: ForecastSettings, checkpoint: Path) -> StreamForecasts:
    """The forecasts as the last checkpoint left them (fresh when there is none)."""
    forecasts = StreamForecasts(settings)
    if not forecasts.active:
        return forecasts
    store = CheckpointFile(forecast_path(checkpoint))
    data = store.load()
    if data is None:
        return forecasts
    try:
        restored = forecasts.restore(data)
    except Exception as exc:  # an unreadable file must not stop the service
        moved = store.set_aside()
        log.error("forecast checkpoint %s unreadable (%s); moved to %s, forecasts start "
                  "learning", store.path, exc, moved)
        return StreamForecasts(settings)
    log.info("restored forecasts of %d streams from %s", restored, store.path)
    return forecasts


class WithForecasts:
    """A CheckpointFile whose ``save`` also writes the forecasts' state."""

    def __init__(self, engine: CheckpointFile, forecasts: StreamForecasts) -> None:
        self.engine = engine
        self.path = engine.path
        self.forecasts = forecasts
        self.file = CheckpointFile(forecast_path(engine.path))

    def load(self) -> bytes | None:
        return self.engine.load()

    def set_aside(self) -> Path:
        return self.engine.set_aside()

    def save(self, data: bytes) -> None:
        self.engine.save(data)
        self.file.save(self.forecasts.snapshot())
