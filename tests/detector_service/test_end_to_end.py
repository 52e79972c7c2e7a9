"""Publisher-like input with injected faults -> detector subprocess -> InfluxDB 1.x and alerts."""

from __future__ import annotations

import orjson
import pytest
from harness import wait_until

from .service import BASE_TS, Detector, Feeder, detector_config, series

N_STREAMS, N_POINTS, SPIKE_AT = 5, 200, 150
SPIKED = (1, 3)


@pytest.fixture
def detector_v1(tmp_path, mosquitto, influxdb):
    database = influxdb.create_database()
    config = detector_config(tmp_path, mosquitto, influx={"url": influxdb.url,
                                                          "database": database})
    detector = Detector(tmp_path, config, mosquitto)
    detector.database = database
    yield detector
    detector.close()


def test_readings_become_points_and_faults_become_alerts(detector_v1, mosquitto, influxdb,
                                                         mqtt_collector):
    alerts = mqtt_collector(mosquitto, "iotwatch/alerts/#")
    dead = mqtt_collector(mosquitto, "iotwatch/deadletter/detector")
    detector_v1.start()
    feeder = Feeder(mosquitto)
    for site, device, metric, ts, value in series(N_STREAMS, N_POINTS, spike_at=SPIKE_AT,
                                                  spike_streams=SPIKED):
        feeder.reading(site, device, metric, ts, value, unit="C")
    feeder.raw("iotwatch/readings/site-1/dev-0/temperature", b'{"value": "hot"}')
    feeder.close()
    db = detector_v1.database
    total = N_STREAMS * N_POINTS
    wait_until(lambda: influxdb.count("readings", db=db) >= total, 60,
               what=f"{total} points in InfluxDB")
    assert influxdb.count("readings", db=db) == total

    rows = influxdb.query('SELECT * FROM "readings" WHERE "device" = \'dev-2\' ORDER BY time',
                          db=db)
    assert len(rows) == N_POINTS
    assert rows[0]["time"] == round(BASE_TS * 1000)
    assert rows[-1]["time"] == round((BASE_TS + N_POINTS - 1) * 1000)
    first = rows[0]
    assert (first["site"], first["device"], first["metric"]) == ("site-1", "dev-2", "temperature")
    assert isinstance(first["value"], float) and first["anomaly"] in (0, 1)
    assert {"score", "threshold", "score_zscore"} <= set(first)

    # One firing alert per spiked stream, on its own topic, then it resolves.
    firing = wait_until(lambda: [a for a in alerts.json() if a["state"] == "firing"] or None, 60,
                        what="firing alerts")
    wait_until(lambda: {a["device"] for a in alerts.json() if a["state"] == "firing"}
               >= {f"dev-{s}" for s in SPIKED}, 60, what="an alert per spiked stream")
    fired = [a for a in alerts.json() if a["state"] == "firing"]
    assert {a["device"] for a in fired} == {f"dev-{s}" for s in SPIKED}
    assert len(fired) == len(SPIKED), fired
    assert firing[0]["ts"] >= "2026-01-20T10:32:30"
    wait_until(lambda: len([a for a in alerts.json() if a["state"] == "resolved"]) == len(SPIKED),
               60, what="resolved alerts")
    topics = {t for t, _, _ in alerts.messages}
    assert topics == {f"iotwatch/alerts/site-1/dev-{s}/temperature" for s in SPIKED}
    alert_rows = influxdb.query('SELECT * FROM "alerts"', db=db)
    assert {(r["device"], r["state"]) for r in alert_rows} == {
        (f"dev-{s}", state) for s in SPIKED for state in ("firing", "resolved")}
    assert all(r["fingerprint"] and r["text"] for r in alert_rows)

    # The malformed reading was dead-lettered and counted; the service is fine.
    letter = orjson.loads(dead.wait_for(1)[0][1])
    assert letter["reason"] == "non_numeric"
    assert detector_v1.metric("iotwatch_detector_rejected_total", 'reason="non_numeric"') == 1
    wait_until(lambda: influxdb.count("iotwatch_service", db=db) > 0, 30,
               what="service counters")
    status, health = detector_v1.get("/health")
    assert status == 200 and health["mqtt_connected"] and health["sink_writable"]

    assert detector_v1.terminate() == 0
