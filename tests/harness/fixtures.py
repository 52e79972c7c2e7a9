"""The pytest fixtures of the real-server harness (imported by tests/conftest.py).

Each server comes, in order of preference, from an environment variable naming an
external one (see external.py), from Docker when ``IOTWATCH_TEST_USE_DOCKER=1``
(see docker.py), or from the Debian binary on free loopback ports. A missing binary
is an error naming the package to install, never a skip. Every server started here
is stopped at teardown, whatever the tests did.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from . import docker, external
from .collector import Collector, collect
from .influx import InfluxDB1, start_local_influxdb
from .mosquitto import (
    STOCK_QUEUE_LIMITS,
    Broker,
    Credentials,
    broker_private_dir,
    make_credentials,
    start_local_broker,
)
from .nats import NatsServer, start_nats
from .victoria import VictoriaMetrics, start_local_victoria_metrics

__all__ = ["fresh_influxdb", "fresh_mosquitto", "influxdb", "mosquitto", "mqtt_collector",
           "mqtt_credentials", "nats_server", "stock_mosquitto", "victoria_metrics"]


@pytest.fixture(scope="session")
def mqtt_credentials() -> Iterator[Credentials]:
    """Passwords for every MQTT user, made once per session by the project's scripts."""
    directory = broker_private_dir("iotwatch-mqtt-credentials-")
    try:
        yield make_credentials(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _own_broker(factory: pytest.TempPathFactory, credentials: Credentials,
               options: dict[str, str] | None = None) -> Broker:
    workdir = factory.mktemp("mosquitto")
    if docker.docker_requested():
        return docker.start_docker_broker(workdir, credentials, options)
    return start_local_broker(workdir, credentials, options=options)


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory,
              mqtt_credentials: Credentials) -> Iterator[Broker]:
    """The session's broker. Do not stop it: tests that stop or restart use fresh_mosquitto."""
    broker = external.external_broker() or _own_broker(tmp_path_factory, mqtt_credentials)
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture
def fresh_mosquitto(tmp_path_factory: pytest.TempPathFactory,
                    mqtt_credentials: Credentials) -> Iterator[Broker]:
    """A broker of this test's own (own process, ports and persistence) to stop and restart."""
    broker = _own_broker(tmp_path_factory, mqtt_credentials)
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture
def stock_mosquitto(tmp_path_factory: pytest.TempPathFactory,
                    mqtt_credentials: Credentials) -> Iterator[Broker]:
    """A broker of this test's own with Mosquitto's stock queue limits (max_queued_messages
    1000, max_inflight_messages 20): what a new user runs, and where readings get dropped."""
    broker = _own_broker(tmp_path_factory, mqtt_credentials, STOCK_QUEUE_LIMITS)
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture
def mqtt_collector() -> Iterator[Callable[..., Collector]]:
    """``collect(broker, topic_filter, role="monitor")``, closing every collector afterwards."""
    made: list[Collector] = []

    def make(broker: Broker, topic_filter: str, role: str = "monitor", **kw: Any) -> Collector:
        collector = collect(broker, topic_filter, role, **kw)
        made.append(collector)
        return collector

    yield make
    for collector in made:
        collector.close()


def _own_influxdb(factory: pytest.TempPathFactory) -> InfluxDB1:
    workdir = factory.mktemp("influxdb")
    if docker.docker_requested():
        return docker.start_docker_influxdb(workdir)
    return start_local_influxdb(workdir)


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB1]:
    """The session's InfluxDB 1.x with a fresh database ``.database``."""
    url = os.environ.get(external.INFLUXDB_URL)
    if url:
        influx = InfluxDB1(url, database="")
        influx.database = influx.create_database()
        try:
            yield influx
        finally:
            influx.drop_database(influx.database)
        return
    influx = _own_influxdb(tmp_path_factory)
    try:
        yield influx
    finally:
        influx.close()


@pytest.fixture
def fresh_influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB1]:
    """An InfluxDB of this test's own, to stop and start."""
    influx = _own_influxdb(tmp_path_factory)
    try:
        yield influx
    finally:
        influx.close()


@pytest.fixture(scope="session")
def victoria_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    """The session's VictoriaMetrics (written to over the InfluxDB v2 write API)."""
    url = os.environ.get(external.VM_URL)
    if url:
        yield VictoriaMetrics(url)
        return
    workdir = tmp_path_factory.mktemp("victoria-metrics")
    vm = (docker.start_docker_victoria_metrics(workdir) if docker.docker_requested()
          else start_local_victoria_metrics(workdir))
    try:
        yield vm
    finally:
        vm.close()


@pytest.fixture
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A NATS server (JetStream, MQTT listener, the project's subject mapping) of this
    test's own, with a fresh store."""
    server = start_nats(tmp_path_factory.mktemp("nats"))
    try:
        yield server
    finally:
        server.close()
