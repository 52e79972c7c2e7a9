"""Fixtures of the fault drills: ``start_pipeline(...)`` builds a whole pipeline of this
test's own (broker, detector, InfluxDB database, alerting service, receivers) and tears it
down afterwards; every drill's summary line is shown again at the end of the run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from drills.pipeline import SUMMARIES, Pipeline

from alerting.catchers import make_dev_cert


@pytest.fixture(scope="session")
def drill_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The SMTP catcher's certificate (the alerting service trusts it as its CA file)."""
    return make_dev_cert(tmp_path_factory.mktemp("drill-cert"))


@pytest.fixture
def start_pipeline(request: pytest.FixtureRequest, tmp_path: Path,
                   drill_cert) -> Iterator[Callable[..., Pipeline]]:
    """``start_pipeline(stock_broker=False, own_influxdb=False, detector=None,
    influx_options=None, alerting=True, start=True)``: a pipeline on a broker of its own
    (the project's configuration, or with ``stock_broker`` Mosquitto's stock queue limits);
    ``own_influxdb`` gives it an InfluxDB it may stop; ``detector`` / ``influx_options`` override the detector's
    ``detector:`` / ``influxdb:`` sections."""
    made: list[Pipeline] = []

    def make(*, stock_broker: bool = False, own_influxdb: bool = False,
             detector: dict[str, Any] | None = None,
             influx_options: dict[str, Any] | None = None, alerting: bool = True,
             start: bool = True) -> Pipeline:
        broker = request.getfixturevalue("stock_mosquitto" if stock_broker else "fresh_mosquitto")
        influx = request.getfixturevalue("fresh_influxdb" if own_influxdb else "influxdb")
        pipeline = Pipeline(tmp_path, broker, influx, drill_cert, detector=detector,
                            influx_options=influx_options, alerting=alerting)
        made.append(pipeline)
        return pipeline.start() if start else pipeline

    yield make
    for pipeline in made:
        pipeline.close()


def pytest_terminal_summary(terminalreporter) -> None:
    if SUMMARIES:
        terminalreporter.section("fault drills")
        for line in SUMMARIES:
            terminalreporter.write_line(line)
