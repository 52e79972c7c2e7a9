"""Real servers for the tests: Mosquitto with the project's configuration, InfluxDB 1.x,
VictoriaMetrics, NATS (JetStream + MQTT), started on free loopback ports and always torn down.

tests/conftest.py puts ``tests/`` on sys.path and imports the fixtures, so every
test sees them; helpers are imported as ``from harness import collect, wait_until``.
"""

from .collector import Collector, collect
from .influx import InfluxDB1
from .mosquitto import SENSORS, SERVICE_ROLES, Broker, Credentials
from .nats import NatsServer
from .process import HarnessError, free_port, wait_until
from .victoria import VictoriaMetrics

__all__ = ["SENSORS", "SERVICE_ROLES", "Broker", "Collector", "Credentials", "HarnessError",
           "InfluxDB1", "NatsServer", "VictoriaMetrics", "collect", "free_port", "wait_until"]
