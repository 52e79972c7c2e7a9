"""The detection engine: online per-stream detectors, calibration and alert decisions.

Pure: no I/O, no wall clock, no global random state. The detector service and offline
evaluation run the same code. See ``docs/detection.md``.
"""

from detector.engine.decision import AlertEvent
from detector.engine.engine import DEVICE_METRIC, Engine, Outcome
from detector.engine.settings import (
    CalibrationSettings,
    DecisionSettings,
    DetectorsSettings,
    EngineSettings,
    StreamRule,
)

__all__ = [
    "DEVICE_METRIC",
    "AlertEvent",
    "CalibrationSettings",
    "DecisionSettings",
    "DetectorsSettings",
    "Engine",
    "EngineSettings",
    "Outcome",
    "StreamRule",
]
