"""config/detector.yaml shows the engine's defaults (stream rules there are examples)."""

from __future__ import annotations

from pathlib import Path

import yaml

from detector.engine import EngineSettings

SAMPLE = Path(__file__).resolve().parents[2] / "config" / "detector.yaml"


def test_sample_engine_section_equals_the_defaults() -> None:
    section = yaml.safe_load(SAMPLE.read_text())["detector"]
    keys = ("enabled", "seed", "detectors", "calibration", "decision")
    shown = EngineSettings.model_validate({k: section[k] for k in keys if k in section})
    defaults = EngineSettings()
    for key in keys:
        assert getattr(shown, key) == getattr(defaults, key), key
    assert "enabled" in section and "decision" in section and "calibration" in section
