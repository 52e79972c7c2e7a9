"""The dashboard in a real browser against a real run: Mosquitto, the detector, InfluxDB 1.x.

Headless Chromium (Debian's ``chromium``) driven by Playwright: the page loads and shows
the streams, a fault injected over MQTT appears as firing, a malformed reading appears as
a dead letter, a filter narrows every panel, and the browser logs no console error along
the way.
"""

from __future__ import annotations

import os
import re

import pytest
from detector_service.service import BASE_TS, Detector, Feeder, detector_config, series
from harness import free_port, wait_until

from iotwatch.config import InfluxSettings, MqttSettings
from iotwatch.dashboard import browser

SITE, N_STREAMS, CALM = "dash-1", 3, 120
FAULTY = "dev-1"

pytestmark = pytest.mark.slow


@pytest.fixture
def run(tmp_path, mosquitto, influxdb):
    """A detector writing to its own database, calm readings stored, and the dashboard."""
    reason = browser.unavailable()
    if reason and os.environ.get("CI"):
        pytest.fail(f"CI must run the browser test (.ci/run installs chromium): {reason}")
    if reason:
        pytest.skip(f"no headless browser: {reason}")
    from iotwatch.dashboard.app import DashboardOptions, start

    database = influxdb.create_database()
    config = detector_config(tmp_path, mosquitto, sites=(SITE,),
                             influx={"url": influxdb.url, "database": database})
    detector = Detector(tmp_path, config, mosquitto).start()
    feeder = Feeder(mosquitto)
    for site, device, metric, ts, value in series(N_STREAMS, CALM, site=SITE):
        feeder.reading(site, device, metric, ts, value)
    feeder.flush()
    wait_until(lambda: influxdb.count("readings", db=database) >= N_STREAMS * CALM, 60,
               what="the calm readings in InfluxDB")
    monitor = MqttSettings(**mosquitto.mqtt_section("monitor"),
                           password=mosquitto.password("monitor"))
    dashboard = start(DashboardOptions(
        influxdb=InfluxSettings(url=influxdb.url, database=database),
        detector_url=detector.url, alerting_url=None, mqtt=monitor, port=0,
        refresh_s=1.0)).in_background()
    try:
        yield dashboard, feeder
    finally:
        dashboard.close()
        feeder.close()
        detector.close()


def test_page_shows_streams_a_fault_firing_and_filters(run):
    dashboard, feeder = run
    problems: list[str] = []
    with browser.chromium_page() as page:
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                if m.type == "error" else None)
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.goto(dashboard.url)

        # Every stream is listed by the detector and drawn from InfluxDB.
        names = [f"{SITE}/dev-{s}/temperature" for s in range(N_STREAMS)]
        wait_until(lambda: all(n in page.inner_text("#streams-table") for n in names), 30,
                   what="the detector's streams on the page")
        wait_until(lambda: all(n in page.inner_text("#streams-graph") for n in names), 30,
                   what="a chart per stream")
        assert page.inner_text("#service-detector .state") == "ok"
        assert "nothing is firing" in page.inner_text("#firing")

        # A spike on one stream: firing on the page without a reload.
        for i in range(CALM, CALM + 3):
            feeder.reading(SITE, FAULTY, "temperature", BASE_TS + i, 95.0)
        feeder.flush()
        faulty = f"{SITE}/{FAULTY}/temperature"
        wait_until(lambda: faulty in page.inner_text("#firing"), 30,
                   what="the spiked stream under 'Firing now'")
        wait_until(lambda: "firing" in page.inner_text("#alert-history"), 30,
                   what="the firing alert in the alert history (from InfluxDB)")
        assert faulty in page.inner_text("#alert-history")

        # A malformed reading: counted by reason, and listed with its topic from the broker.
        garbage = f"iotwatch/readings/{SITE}/dev-2/temperature"
        feeder.raw(garbage, b'{"value": "hot"}')
        feeder.flush()
        wait_until(lambda: garbage in page.inner_text(".dead-letter-list"), 30,
                   what="the dead letter listed on the page")
        assert "non_numeric" in page.inner_text(".dead-letter-table")

        # Filtering on another device narrows every panel to it.
        page.click("#filter-device")
        page.locator(".dash-dropdown-option", has_text=re.compile(r"^\s*dev-0\s*$")).click()
        page.keyboard.press("Escape")
        calm = f"{SITE}/dev-0/temperature"
        wait_until(lambda: faulty not in page.inner_text("#streams-table"), 30,
                   what="the streams table narrowed to dev-0")
        wait_until(lambda: faulty not in page.inner_text("#streams-graph"), 30,
                   what="the charts narrowed to dev-0")
        assert calm in page.inner_text("#streams-table")
        assert calm in page.inner_text("#streams-graph")
        assert "nothing is firing" in page.inner_text("#firing")
        assert "no alerts yet" in page.inner_text("#alert-history")
        assert garbage not in page.inner_text("#dead-letters")
    assert problems == []


def test_a_store_and_services_that_cannot_be_reached_show_their_reasons(tmp_path):
    reason = browser.unavailable()
    if reason and os.environ.get("CI"):
        pytest.fail(f"CI must run the browser test (.ci/run installs chromium): {reason}")
    if reason:
        pytest.skip(f"no headless browser: {reason}")
    from iotwatch.dashboard.app import DashboardOptions, start

    closed = free_port()     # nothing listens here
    dashboard = start(DashboardOptions(
        influxdb=InfluxSettings(url=f"http://127.0.0.1:{closed}"),
        detector_url=f"http://127.0.0.1:{closed}", alerting_url=f"http://127.0.0.1:{closed}",
        port=0, refresh_s=1.0)).in_background()
    problems: list[str] = []
    try:
        with browser.chromium_page() as page:
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.goto(dashboard.url)
            wait_until(lambda: page.locator("#service-detector .state").count(), 30,
                       what="the detector's card")
            assert page.inner_text("#service-detector .state") == "unreachable"
            assert page.inner_text("#service-alerting .state") == "unreachable"
            assert "Connection refused" in page.inner_text("#service-detector")
            wait_until(lambda: "unreachable" in page.inner_text("#alert-history"), 30,
                       what="the store's error in place of the alert history")
            assert f"127.0.0.1:{closed}" in page.inner_text("#alert-history")
            assert "detector not reachable" in page.inner_text("#streams-table")
    finally:
        dashboard.close()
    assert problems == []
