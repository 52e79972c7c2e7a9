"""Fault drills: the whole pipeline on real servers, one fault each, and the count of
published / stored / alerted / delivered at the end (see docs/drills.md).

Run them alone with ``pytest -m drill`` (add ``-s`` to see each summary as it happens).
"""

from __future__ import annotations

import signal

import pytest
from drills.pipeline import Drill
from harness import wait_until

pytestmark = pytest.mark.drill

MID_STREAM = 150  # readings per stream published around the fault


def test_broker_restarted_mid_stream(start_pipeline):
    # Slow batches, so that the detector always holds readings it has not acknowledged yet.
    pipeline = start_pipeline(detector={"input": {"ack_batch": 5000, "idle_flush_s": 5}},
                              influx_options={"flush_interval_s": 3})
    drill = Drill(pipeline, "broker-restart")
    drill.fire()
    drill.resolve()
    in_flight = []

    def restart() -> None:
        detector = pipeline.detector
        in_flight.append(int(detector.metric("iotwatch_detector_readings_total")
                             - detector.metric("iotwatch_detector_acks_total")))
        pipeline.broker.restart()

    drill.publish_during(drill.next_seq + MID_STREAM, restart, hold_publisher=True)
    wait_until(lambda: pipeline.detector.get("/health")[0] == 200, 60,
               what="the detector reconnected")
    wait_until(lambda: pipeline.alerting.get("/health")["mqtt"] == "connected", 60,
               what="the alerting service reconnected")
    drill.publish(drill.next_seq + 20)
    drill.settle()
    # A reading in flight when the broker stopped comes again: the same point, stored once.
    again = pipeline.detector.get("/health")[1]["sequence"]["duplicated"]
    drill.check(f"processed, not yet acknowledged at the restart {in_flight[0]}; "
                f"received again (seq duplicates at the detector) {again}")
    assert in_flight[0] > 0, "nothing was in flight: the restart was not mid-stream"
    assert again > 0, "the broker resent nothing the detector had not acknowledged"


def test_detector_sigkilled_and_restarted(start_pipeline):
    pipeline = start_pipeline()
    detector = pipeline.detector
    drill = Drill(pipeline, "detector-sigkill")
    drill.fire()
    saved = detector.metric("iotwatch_detector_checkpoints_total")
    wait_until(lambda: detector.metric("iotwatch_detector_checkpoints_total") > saved, 60,
               what="a checkpoint after the alert")
    drill.publish_during(drill.next_seq + MID_STREAM, detector.kill)
    detector.start()
    drill.settle()
    restored = "restored" in detector.log_path.read_text()
    # Readings not acknowledged before the kill are redelivered: their points are written
    # again (the same points). The state comes back from the last checkpoint, which may be
    # older than the last acknowledged reading: an alert decided after it is decided again
    # (published twice), and the alerting service's notification log sends it once.
    seen = drill.counts()
    counts = drill.check(f"state restored from the checkpoint: {restored}; repeated alerts: "
                         f"{seen.redelivered} with the same ts (redelivered), "
                         f"{seen.alert_repeats - seen.redelivered} decided again (from a "
                         f"checkpoint older than the last acknowledged reading)",
                         repeats_ok=True)
    assert restored and counts.alert_repeats <= len(drill.fingerprints()) * 2


def test_influxdb_stopped_and_restarted(start_pipeline):
    pipeline = start_pipeline(own_influxdb=True)
    detector = pipeline.detector
    drill = Drill(pipeline, "influxdb-outage")
    drill.fire()
    drill.publish_during(drill.next_seq + MID_STREAM, pipeline.influx.stop)
    # Every reading is acknowledged into the detector's spool while the database is down.
    wait_until(lambda: detector.metric("iotwatch_detector_acks_total") >= len(drill.published),
               60, what="every reading acknowledged into the spool")
    spooled = int(detector.metric("iotwatch_detector_spool_points"))
    assert spooled > 0 and detector.get("/health")[0] == 503
    pipeline.influx.start()
    drill.settle()
    drill.check(f"spooled during the outage {spooled}")


def test_webhook_answering_500_then_200(start_pipeline):
    pipeline = start_pipeline()
    pipeline.webhook.respond(500)
    drill = Drill(pipeline, "webhook-500")
    drill.fire()
    pipeline.webhook.wait_for_requests(2)  # tried and refused, more than once
    drill.resolve()
    refused = sum(r.status == 500 for r in pipeline.webhook.requests)
    pipeline.webhook.respond(200)
    drill.settle()
    drill.check(f"webhook answered 500 to {refused} attempts")


def test_smtp_down_then_up(start_pipeline):
    pipeline = start_pipeline()
    pipeline.smtp.stop()
    drill = Drill(pipeline, "smtp-down")
    drill.fire()

    def email_attempts() -> int:
        return sum(row["attempts"] for row in pipeline.deliveries()
                   if row["target"].startswith("email") and row["status"] == "pending")

    wait_until(lambda: email_attempts() >= 2, 60, what="e-mail attempts against a dead server")
    drill.resolve()
    failed = email_attempts()
    pipeline.smtp.start()
    drill.settle()
    drill.check(f"e-mail attempts while the server was down {failed}")


def test_alerting_sigkilled_with_pending_deliveries(start_pipeline):
    pipeline = start_pipeline()
    alerting = pipeline.alerting
    pipeline.webhook.respond(503)
    drill = Drill(pipeline, "alerting-sigkill")
    drill.fire()
    pending = sum(alerting.get("/health")["outbox"].values())
    assert pending >= len(drill.spiked)
    assert alerting.kill(signal.SIGKILL) == -signal.SIGKILL
    # While it is down the resolves wait in its persistent session on the broker.
    drill.resolve(queued=False)
    pipeline.webhook.respond(200)
    alerting.start()
    drill.settle()
    drill.check(f"pending at the kill {pending}")
