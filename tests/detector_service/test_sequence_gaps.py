"""Readings a stock broker drops become visible: /metrics, /streams, /health and one warning.

Mosquitto's stock ``max_queued_messages 1000`` drops every reading beyond 1000 queued for a
detector that is stopped (or behind). Nothing about it reached the detector before its
readings were checked for ``seq`` gaps; ``/health`` said ok.
"""

from __future__ import annotations

from harness import wait_until

from .service import BASE_TS, Detector, Feeder, detector_config

SENT_WHILE_STOPPED = 3000
SENT_AFTER = 20


def test_readings_dropped_by_a_stock_broker_show_as_gaps(tmp_path, stock_mosquitto):
    broker = stock_mosquitto
    points = tmp_path / "points.lp"
    config = detector_config(tmp_path, broker, sites=("site-gap",), detector={
        "output": {"sink": "file", "file": str(points)},
        "sequence": {"max_gap_rate": 0.05, "window": 1000}})
    detector = Detector(tmp_path, config, broker)
    feeder = Feeder(broker)
    try:
        detector.start()  # subscribes with a persistent session ...
        assert detector.terminate() == 0  # ... which the broker keeps queueing for

        for seq in range(SENT_WHILE_STOPPED):  # every one acknowledged by the broker
            feeder.reading("site-gap", "dev-0", "temperature", BASE_TS + seq, 20.0, seq=seq)
        feeder.flush()
        detector.start()
        last = SENT_WHILE_STOPPED + SENT_AFTER - 1
        for seq in range(SENT_WHILE_STOPPED, last + 1):
            feeder.reading("site-gap", "dev-0", "temperature", BASE_TS + seq, 20.0, seq=seq)
        feeder.flush()

        def counts():
            _, body = detector.get("/streams?match=site-gap/dev-0/temperature")
            streams = (body or {}).get("streams") or {}
            return (streams.get("site-gap/dev-0/temperature") or {}).get("sequence")

        wait_until(lambda: (counts() or {}).get("last_seq") == last, 60,
                   what=f"seq {last} at the detector\n{detector.log_tail()}")
        sequence = counts()
        received, missing = sequence["received"], sequence["missing"]
        assert 0 < missing < SENT_WHILE_STOPPED  # the broker kept about 1000, dropped the rest
        assert received + missing == last + 1
        assert sequence["duplicated"] == sequence["out_of_order"] == 0

        assert detector.metric("iotwatch_detector_sequence_skipped_total") == missing
        assert detector.metric("iotwatch_detector_sequence_missing") == missing
        assert detector.metric("iotwatch_detector_sequence_degraded") == 1

        status, health = detector.get("/health")
        assert status == 503 and health["status"] == "degraded"
        assert health["mqtt_connected"] and health["sink_writable"]
        assert any("missing" in problem for problem in health["problems"])
        assert health["sequence"]["missing"] == missing

        assert detector.terminate() == 0
        log = detector.log_path.read_text()
        warnings = [line for line in log.splitlines() if "max_queued_messages" in line]
        assert len(warnings) == 1 and "WARNING" in warnings[0], log[-3000:]
        stored = sum(1 for line in points.read_text().splitlines()
                     if line.startswith("readings,site=site-gap"))
        assert stored == received  # what the detector saw it stored; the gap says the rest
    finally:
        feeder.close()
        detector.close()
