"""Forecasts and early warnings through the real detector, Mosquitto, InfluxDB and alerting."""

from __future__ import annotations

import math
import random
import threading
import uuid

import pytest
from detector_service.service import BASE_TS, Detector, Feeder, detector_config
from harness import free_port, wait_until

from alerting.catchers import WebhookCatcher
from detector.sidestate import side_path
from iotwatch.timeparse import parse_timestamp

STEP_S = 60.0


def forecast_section(**extra):
    return {"enabled": True, "season_s": 1800, "horizon": 10, "every": 5,
            "model": {"warmup": 20}, **extra}


def test_forecast_points_are_stored_queryable_and_survive_a_restart(tmp_path, mosquitto,
                                                                    influxdb):
    database = influxdb.create_database()
    config = detector_config(tmp_path, mosquitto, influx={"database": database, "url": influxdb.url},
                             detector={"forecast": forecast_section()})
    noise = random.Random(7)
    cycle = [50 + 5 * math.sin(2 * math.pi * i / 30) for i in range(400)]  # 30-minute cycle
    detector = Detector(tmp_path, config, mosquitto)
    feeder = Feeder(mosquitto)
    try:
        detector.start()  # inside try: a failed start is cleaned up too
        for i in range(200):
            feeder.reading("site-1", "boiler", "temperature", BASE_TS + i * STEP_S,
                           cycle[i] + noise.gauss(0, 0.1))
        feeder.flush()
        wait_until(lambda: influxdb.count("readings", db=database) >= 200, 60,
                   what="200 readings stored")
        wait_until(lambda: influxdb.count("forecasts", db=database) > 0, 30,
                   what="forecast points stored")
        assert detector.terminate() == 0
        rows = influxdb.query('SELECT "forecast", "lower", "upper", "step", "site", "device", '
                              '"metric" FROM "forecasts"', db=database)
        last_ms = round((BASE_TS + 199 * STEP_S) * 1000)
        assert {(r["site"], r["device"], r["metric"]) for r in rows} == {
            ("site-1", "boiler", "temperature")}
        assert all(r["lower"] <= r["forecast"] <= r["upper"] for r in rows)
        assert max(r["time"] for r in rows) == last_ms + 10 * STEP_S * 1000  # 10 steps ahead
        # The newest forecast of each step follows the cycle.
        errors = [abs(r["forecast"] - cycle[round((r["time"] / 1000 - BASE_TS) / STEP_S)])
                  for r in rows]
        assert max(errors) < 1.5, max(errors)
        assert side_path(tmp_path / "checkpoint.bin", "forecast").is_file()

        detector.start()   # restored: it goes on forecasting without a new season to learn
        before = influxdb.count("forecasts", db=database)
        for i in range(200, 210):
            feeder.reading("site-1", "boiler", "temperature", BASE_TS + i * STEP_S, cycle[i])
        feeder.flush()
        wait_until(lambda: influxdb.count("forecasts", db=database) > before, 30,
                   what="forecasts right after the restart")
        assert "restored forecast of 1 streams" in detector.log_tail(20000)
        _, streams = detector.get("/streams")
        summary = streams["streams"]["site-1/boiler/temperature"]
        assert summary["forecast"]["ready"] and summary["forecast"]["season"] == 30
    finally:
        feeder.close()
        detector.close()


def _alerting(broker, tmp_path, hook_url: str):
    from alerting import app
    from alerting.config import AlertingFile
    from iotwatch.config import build_config

    raw = {"mqtt": broker.mqtt_section("alerting", client_id=f"al-{uuid.uuid4().hex[:8]}"),
           "http": {"host": "127.0.0.1", "port": free_port()},
           "alerting": {"database": str(tmp_path / "alerting.sqlite3"),
                        "route": {"receiver": "hook", "group_by": ["site", "device", "rule"],
                                  "group_wait_s": 0.1, "group_interval_s": 0.2,
                                  "repeat_interval_s": 3600},
                        "receivers": {"hook": {"webhook": {"url": hook_url}}},
                        "delivery": {"retry": {"initial_s": 0.1, "max_s": 0.5}}}}
    config = build_config(raw, AlertingFile, environ=broker.env("alerting"))
    stop = threading.Event()
    thread = threading.Thread(target=app.run, args=(config, stop), daemon=True)
    thread.start()
    return stop, thread


def _warnings(hook: WebhookCatcher) -> list[dict]:
    return [a for r in hook.requests if isinstance(r.payload, dict)
            for a in r.payload.get("alerts", []) if a.get("labels", {}).get("rule") == "boiler_hot"]


@pytest.mark.slow
def test_a_drift_is_warned_about_before_the_limit_is_crossed(tmp_path, mosquitto):
    """60 -> 90 at 0.2 per minute: the warning reaches the webhook before the crossing."""
    limit, slope, crossing = 90.0, 0.2, 150       # the value passes 90 at reading 150
    config = detector_config(tmp_path, mosquitto, detector={
        "decision": {"threshold": 0.99},          # no anomaly alert: only the warning here
        "output": {"sink": "file", "file": str(tmp_path / "points.lp"), "stats_interval_s": 1},
        "forecast": forecast_section(
            season_s=0, horizon=30, every=1, model={"warmup": 20, "beta": 0.05, "phi": 1.0},
            warnings=[{"match": "+/+/supply_temp", "limit": limit, "direction": "above",
                       "within_s": 1800, "rule": "boiler_hot", "severity": "warning"}])})
    noise = random.Random(3)
    values = [60 + slope * i + noise.gauss(0, 0.05) for i in range(crossing + 20)]
    with WebhookCatcher() as hook:
        stop, thread = _alerting(mosquitto, tmp_path, hook.url)
        detector = Detector(tmp_path, config, mosquitto)
        feeder = Feeder(mosquitto)
        try:
            detector.start()  # inside try: a failed start is cleaned up too
            sent = 0
            fired = lambda: detector.metric("iotwatch_detector_alerts_total",  # noqa: E731
                                            'state="firing"')
            while not fired():   # readings below the limit only, until the detector warns
                assert sent < crossing, "no early warning before the limit was crossed"
                for i in range(sent, sent + 5):
                    feeder.reading("site-1", "boiler", "supply_temp", BASE_TS + i * STEP_S,
                                   values[i])
                sent += 5
                feeder.flush()
                wait_until(lambda n=sent: detector.metric("iotwatch_detector_readings_total")
                           >= n, 30, what=f"{sent} readings processed")
            assert all(v <= limit for v in values[:sent])   # nothing has crossed yet ...
            wait_until(lambda: _warnings(hook), 30, what="the early warning at the webhook")
            warning = _warnings(hook)[0]                    # ... and the webhook has it
            assert warning["status"] == "firing"
            notes = warning["annotations"]
            assert "will exceed 90 within 30 min" in notes["summary"], notes
            lead_s = float(notes["lead_s"])
            assert 0 < lead_s <= 1800
            warned_ts = parse_timestamp(warning["startsAt"])
            before_s = BASE_TS + crossing * STEP_S - warned_ts
            assert before_s > 0
            # The value crosses: the limit is reached and the warning resolves.
            for i in range(sent, crossing + 20):
                feeder.reading("site-1", "boiler", "supply_temp", BASE_TS + i * STEP_S,
                               values[i])
            feeder.flush()
            wait_until(lambda: any(a["status"] == "resolved" for a in _warnings(hook)), 30,
                       what="the warning resolved once the limit was reached")
            resolved = [a for a in _warnings(hook) if a["status"] == "resolved"][0]
            assert "the limit was reached" in resolved["annotations"]["summary"]
            firing = [a for a in _warnings(hook) if a["status"] == "firing"]
            assert len({a["fingerprint"] for a in firing}) == 1   # one alert per episode
            print(f"early warning fired at reading time {before_s / 60:.0f} min before the "
                  f"crossing (forecast crossing in {lead_s / 60:.0f} min); delivered to the "
                  f"webhook before any reading above {limit:g} was published")
        finally:
            feeder.close()
            detector.close()
            stop.set()
            thread.join(30)
