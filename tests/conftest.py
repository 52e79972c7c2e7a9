"""Fixtures for every test under tests/: the real-server harness (tests/harness/).

Fixtures: mosquitto, fresh_mosquitto, mqtt_collector, mqtt_credentials, influxdb,
fresh_influxdb, victoria_metrics, nats_server. Helpers: ``from harness import collect, wait_until``.
"""

import sys
from pathlib import Path

# The suite runs with --import-mode=importlib, which leaves sys.path alone; put tests/
# on it so the harness imports as the package "harness" (the same module objects
# whether reached from here, from a test, or by doctest collection).
_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from harness.fixtures import *  # noqa: E402,F403
