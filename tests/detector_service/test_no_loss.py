"""Nothing lost: InfluxDB down for a while, and the detector killed with SIGKILL mid-stream."""

from __future__ import annotations

import threading
import time

from harness import wait_until

from .service import Detector, Feeder, detector_config, series

STREAMS = 3


def test_influxdb_outage_loses_no_point(tmp_path, mosquitto, fresh_influxdb):
    influx = fresh_influxdb
    db = influx.create_database()
    config = detector_config(tmp_path, mosquitto, sites=("site-out",),
                             influx={"url": influx.url, "database": db, "timeout_s": 2})
    detector = Detector(tmp_path, config, mosquitto)
    try:
        detector.start()
        feeder = Feeder(mosquitto)
        for row in series(STREAMS, 100, site="site-out"):
            feeder.reading(*row)
        feeder.flush()
        wait_until(lambda: influx.count("readings", db=db) == 300, 60, what="300 points")

        influx.stop()
        for row in series(STREAMS, 200, site="site-out", start=100):
            feeder.reading(*row)
        feeder.flush()
        # Spooled points are durable: every reading is acknowledged while InfluxDB is down.
        wait_until(lambda: detector.metric("iotwatch_detector_acks_total") >= 900, 60,
                   what="every reading acknowledged into the spool")
        assert detector.metric("iotwatch_detector_spool_points") >= 600
        status, health = detector.get("/health")
        assert status == 503 and not health["sink_writable"] and health["problems"]

        influx.start()
        wait_until(lambda: detector.metric("iotwatch_detector_spool_points") == 0, 120,
                   what="the spool to be replayed")
        wait_until(lambda: detector.get("/health")[0] == 200, 60, what="healthy again")
        assert influx.count("readings", db=db, where="\"site\" = 'site-out'") == 900
        assert detector.metric("iotwatch_detector_points_replayed_total") >= 600
        feeder.close()
        assert detector.terminate() == 0
    finally:
        detector.close()


def test_sigkill_mid_stream_loses_no_reading_and_keeps_state(tmp_path, mosquitto, influxdb):
    db = influxdb.create_database()
    per_stream = 400
    config = detector_config(tmp_path, mosquitto, sites=("site-kill",),
                             influx={"url": influxdb.url, "database": db})
    detector = Detector(tmp_path, config, mosquitto)
    rows = list(series(STREAMS, per_stream, site="site-kill"))
    try:
        detector.start()
        feeder = Feeder(mosquitto)
        half = len(rows) // 2
        for row in rows[:half]:
            feeder.reading(*row)
        feeder.flush()
        wait_until(lambda: detector.metric("iotwatch_detector_checkpoints_total") >= 1, 60,
                   what="a first checkpoint")
        sent, done = [0], threading.Event()

        def publish():  # the second half as a steady stream, the kill lands inside it
            for index, row in enumerate(rows[half:]):
                feeder.reading(*row)
                sent[0] = index + 1
                if index % 10 == 9:
                    time.sleep(0.05)
            feeder.flush()
            done.set()

        publisher = threading.Thread(target=publish, daemon=True)
        publisher.start()
        wait_until(lambda: sent[0] >= 100, 60, what="the stream to be under way")
        detector.kill()
        assert not done.is_set(), "the publisher finished before the kill: nothing mid-stream"
        publisher.join(120)
        assert done.is_set()

        detector.start()
        total = STREAMS * per_stream
        wait_until(lambda: influxdb.count("readings", db=db) >= total, 120,
                   what=f"{total} points after the restart")
        # Readings redelivered after the kill are written again as the same points.
        assert influxdb.count("readings", db=db) == total
        assert "restored 3 streams" in detector.log_path.read_text()
        _, streams = detector.get("/streams")
        learned = sum(s["count"] for s in streams["streams"].values())
        after_restart = detector.metric("iotwatch_detector_readings_total")
        assert learned > after_restart, "state was not restored: learning started over"
        feeder.close()
        assert detector.terminate() == 0
    finally:
        detector.close()


def test_broker_restart_mid_stream_loses_no_reading(tmp_path, fresh_mosquitto, influxdb):
    broker = fresh_mosquitto
    db = influxdb.create_database()
    config = detector_config(tmp_path, broker, sites=("site-br",),
                             influx={"url": influxdb.url, "database": db})
    detector = Detector(tmp_path, config, broker)
    try:
        detector.start()
        feeder = Feeder(broker)
        for row in series(STREAMS, 100, site="site-br"):
            feeder.reading(*row)
        feeder.close()
        broker.restart()  # the detector reconnects; unacknowledged readings come again
        wait_until(lambda: detector.get("/health")[0] == 200, 60, what="reconnected")
        feeder = Feeder(broker)
        for row in series(STREAMS, 100, site="site-br", start=100):
            feeder.reading(*row)
        feeder.close()
        wait_until(lambda: influxdb.count("readings", db=db) >= 600, 60, what="600 points")
        assert influxdb.count("readings", db=db) == 600
        assert detector.terminate() == 0
    finally:
        detector.close()
