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


def test_http_endpoints(detector_v1, mosquitto):
    detector_v1.start()
    feeder = Feeder(mosquitto)
    for site, device, metric, ts, value in series(2, 60):
        feeder.reading(site, device, metric, ts, value)
    feeder.close()
    wait_until(lambda: detector_v1.metric("iotwatch_detector_readings_total") >= 120, 60,
               what="readings processed")

    status, streams = detector_v1.get("/streams")
    assert status == 200 and streams["count"] == 2
    summary = streams["streams"]["site-1/dev-0/temperature"]
    assert summary["count"] == 60 and summary["alert_state"] == "normal"
    assert detector_v1.get("/streams?match=%2B/dev-1/%2B")[1]["count"] == 1

    calm = {"site": "site-1", "device": "dev-0", "metric": "temperature",
            "ts": "2026-01-20T10:31:00Z", "value": 20.3}
    status, answer = detector_v1.post("/predict", calm)
    assert status == 200
    result = answer["results"][0]
    assert result["anomaly"] is False and set(result["scores"]) == {"zscore"}
    assert result["status"] == "scored"
    status, answer = detector_v1.post("/predict", {**calm, "value": 95.0})
    assert answer["results"][0]["anomaly"] is True
    assert answer["results"][0]["would_alert"] == "firing"
    # Peeking learned nothing.
    assert detector_v1.get("/streams")[1]["streams"]["site-1/dev-0/temperature"]["count"] == 60

    status, answer = detector_v1.post("/predict", {"site": "site-1", "device": "dev-0",
                                                   "ts": 1768905060, "temperature": 20.1,
                                                   "humidity": 40.0})
    assert status == 200 and [r["metric"] for r in answer["results"]] == ["temperature",
                                                                          "humidity"]
    status, answer = detector_v1.post("/predict", {**calm, "device": "never-seen"})
    assert status == 200 and answer["results"][0]["status"] == "unknown stream"
    assert answer["results"][0]["readings_needed"] > 0
    status, answer = detector_v1.post("/predict", {**calm, "value": "NaN"})
    assert status == 400 and answer["error"] == "non_numeric"

    _, text = detector_v1.get("/metrics")
    for name in ("iotwatch_detector_readings_total", "iotwatch_detector_points_written_total",
                 "iotwatch_detector_write_seconds_bucket", "iotwatch_detector_spool_points",
                 "iotwatch_detector_spool_oldest_age_seconds", "iotwatch_detector_streams",
                 "iotwatch_detector_processing_lag_seconds_bucket",
                 "iotwatch_detector_alerts_total", "iotwatch_detector_mqtt_connected"):
        assert name in text, name
    assert detector_v1.metric("iotwatch_detector_streams") == 2


def test_graceful_stop_checkpoints_and_says_offline(detector_v1, mosquitto, tmp_path,
                                                    mqtt_collector):
    detector_v1.start()
    feeder = Feeder(mosquitto)
    for site, device, metric, ts, value in series(3, 50):
        feeder.reading(site, device, metric, ts, value)
    feeder.close()
    wait_until(lambda: detector_v1.metric("iotwatch_detector_acks_total") >= 150, 60,
               what="every reading acknowledged")
    assert detector_v1.terminate() == 0
    status = mqtt_collector(mosquitto, "iotwatch/status/detector")
    assert orjson.loads(status.wait_for(1)[0][1])["state"] == "offline"
    assert (tmp_path / "checkpoint.bin").stat().st_size > 0

    detector_v1.start()  # learning continues where it stopped
    _, streams = detector_v1.get("/streams")
    assert streams["count"] == 3
    assert {s["count"] for s in streams["streams"].values()} == {50}
    assert "restored 3 streams" in detector_v1.log_path.read_text()


def test_v2_write_api_into_victoria_metrics(tmp_path, mosquitto, victoria_metrics):
    bucket = f"b{tmp_path.name[-8:]}".replace("-", "")
    config = detector_config(tmp_path, mosquitto, influx={
        "api": "v2", "url": victoria_metrics.url, "org": "acme", "bucket": bucket},
        sites=("site-v",))
    detector = Detector(tmp_path, config, mosquitto)
    detector.env["IOTWATCH__INFLUXDB__TOKEN"] = "any-token"
    try:
        detector.start()
        feeder = Feeder(mosquitto)
        device = f"vm-{tmp_path.name[-6:]}"
        for _site, _device, metric, ts, value in series(1, 300, spike_at=250, spike_streams=[0]):
            feeder.reading("site-v", device, metric, ts, value)
        feeder.close()
        wait_until(lambda: detector.metric("iotwatch_detector_acks_total") >= 300, 60,
                   what="every reading acknowledged")
        exported = victoria_metrics.export(f'readings_value{{device="{device}"}}')
        assert len(exported) == 1
        assert exported[0]["metric"]["site"] == "site-v"
        assert exported[0]["metric"]["metric"] == "temperature"
        assert len(exported[0]["values"]) == 300
        assert exported[0]["timestamps"][0] == round(BASE_TS * 1000)
        anomalies = victoria_metrics.export(f'readings_anomaly{{device="{device}"}}')
        assert sum(anomalies[0]["values"]) >= 1
        fired = victoria_metrics.export(f'alerts_score{{device="{device}",state="firing"}}')
        assert len(fired) == 1
        assert detector.terminate() == 0
    finally:
        detector.close()


def test_alert_state_is_retained_and_stale_alerts_are_closed_at_start(tmp_path, mosquitto,
                                                                      influxdb, mqtt_collector):
    from iotwatch.contracts import Alert, alert_fingerprint

    site = "site-rc"
    # Left retained by an earlier run whose checkpoint never saw this alert fire.
    fingerprint = alert_fingerprint(site, "dev-9", "temperature", "anomaly")
    old = Alert(fingerprint, "firing", "warning", site, "dev-9", "temperature", "anomaly", 50.0,
                0.8, 0.5, BASE_TS, BASE_TS)
    mosquitto.publish("detector", f"iotwatch/alert-state/{site}/dev-9/temperature",
                      old.to_payload(), retain=True)
    alerts = mqtt_collector(mosquitto, f"iotwatch/alerts/{site}/#")
    state = mqtt_collector(mosquitto, f"iotwatch/alert-state/{site}/#")
    config = detector_config(tmp_path, mosquitto, sites=(site,),
                             influx={"url": influxdb.url, "database": influxdb.create_database()})
    detector = Detector(tmp_path, config, mosquitto)
    try:
        detector.start()
        closed = orjson.loads(alerts.wait_for(1)[0][1])
        assert (closed["state"], closed["fingerprint"]) == ("resolved", fingerprint)
        assert "restart" in closed["annotations"]["summary"]
        state.wait_for(2)
        assert state.messages[-1][1] == b""  # the retained state is cleared

        # A stream that is firing now can be seen by anyone who subscribes later.
        feeder = Feeder(mosquitto)
        for row in series(1, 152, spike_at=150, spike_streams=[0], site=site):
            feeder.reading(*row)
        feeder.close()
        wait_until(lambda: any(orjson.loads(p)["state"] == "firing" for p in alerts.payloads()),
                   60, what="the spike's alert")
        newcomer = mqtt_collector(mosquitto, f"iotwatch/alert-state/{site}/dev-0/#")
        topic, payload, retained = newcomer.wait_for(1)[0]
        assert retained and orjson.loads(payload)["state"] == "firing"
        assert detector.terminate() == 0
    finally:
        detector.close()
        # Leave no retained state behind for other tests on the session's broker.
        for device in ("dev-0", "dev-9"):
            mosquitto.publish("detector", f"iotwatch/alert-state/{site}/{device}/temperature",
                              b"", retain=True)
