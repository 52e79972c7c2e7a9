"""Unhealthy is not dead: during a database outage the detector is unready (503 on
/health and /health/ready) but live (200 on /health/live), so an orchestrator that
restarts on liveness leaves it to spool."""

from __future__ import annotations

from harness import free_port, wait_until

from .service import BASE_TS, Detector, Feeder, detector_config


def test_a_database_outage_makes_the_detector_unready_but_not_dead(tmp_path, mosquitto):
    site = "site-liveness"
    nowhere = f"http://127.0.0.1:{free_port()}"  # no InfluxDB listens here: an outage
    detector = Detector(tmp_path, detector_config(tmp_path, mosquitto, sites=(site,),
                                                  influx={"url": nowhere, "timeout_s": 1}),
                        mosquitto)
    try:
        detector.start(wait_healthy=False)
        wait_until(lambda: detector.get("/health/live")[0] == 200, 60,
                   what=f"/health/live 200\n{detector.log_tail()}")
        feeder = Feeder(mosquitto)
        for i in range(20):
            feeder.reading(site, "dev-1", "temperature", BASE_TS + i, 20.0)
        feeder.close()
        wait_until(lambda: detector.metric("iotwatch_detector_spool_points") >= 20, 60,
                   what="the readings spooled")

        status, ready = detector.get("/health/ready")
        assert status == 503 and ready["sink_writable"] is False, ready
        assert detector.get("/health")[0] == 503
        status, live = detector.get("/health/live")
        assert status == 200, live
        assert live["problems"] == []
        assert set(live["threads"]) == {"worker", "delivery"}
        assert all(t["alive"] for t in live["threads"].values())
        assert detector.terminate() == 0
    finally:
        detector.close()
