"""The demo's pure parts, by tables of cases: scoring, traffic counting, generated configs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from iotwatch.config import build_config
from iotwatch.demo import configs
from iotwatch.demo.brokers import MOSQUITTO_DIR, demo_config
from iotwatch.demo.observe import Traffic
from iotwatch.demo.score import AlertSeen, Fault, score_deliveries, score_faults
from iotwatch.demo.view import LiveState, Summary, render_live, render_summary
from iotwatch.topics import Topics

S1, S2 = ("plant", "boiler-1", "temperature"), ("plant", "pump-1", "power")
SPIKE = Fault(S1, "spike", start=100.0, end=100.0)
SHIFT = Fault(S1, "level_shift", start=500.0, end=700.0)


def firing(stream, at, fp="f"):
    return AlertSeen(stream, fp, "firing", at)


@pytest.mark.parametrize("faults, alerts, rejected, detected, delays, false_alarms", [
    pytest.param([SPIKE], [firing(S1, 100.0)], (), 1, [0.0], 0, id="same reading"),
    pytest.param([SPIKE], [firing(S1, 125.0)], (), 1, [25.0], 0, id="within grace"),
    pytest.param([SPIKE], [firing(S1, 131.0)], (), 0, [], 1, id="after grace: missed + false"),
    pytest.param([SPIKE], [firing(S1, 99.0)], (), 0, [], 1, id="before the fault"),
    pytest.param([SPIKE], [firing(S2, 100.0)], (), 0, [], 1, id="other stream"),
    pytest.param([SPIKE], [AlertSeen(S1, "f", "resolved", 101.0)], (), 0, [], 0,
                 id="a resolve is no detection"),
    pytest.param([SPIKE, SHIFT], [firing(S1, 100.0, "a"), firing(S1, 510.0, "b"),
                                  firing(S1, 520.0, "c")], (), 2, [0.0, 10.0], 0,
                 id="first alert of each window"),
    pytest.param([Fault(S2, "garbage", 300.0, 300.0)], [], [S2], 0, [], 0, id="dead-lettered"),
    pytest.param([Fault(S2, "garbage", 300.0, 300.0)], [], [S1], 0, [], 0,
                 id="other stream dead-lettered"),
    pytest.param([Fault(S2, "spike", 300.0, 300.0)], [], [S2], 0, [], 0,
                 id="only garbage counts as rejected"),
])
def test_score_faults(faults, alerts, rejected, detected, delays, false_alarms):
    result = score_faults(faults, alerts, grace_s=30.0, rejected=rejected)
    assert result.detected == detected
    assert result.delays == delays
    assert len(result.false_alarms) == false_alarms
    assert len(result.missed) == len(faults) - detected - result.rejected


def test_rejected_is_not_detected_and_wall_delays_are_measured():
    garbage = Fault(S2, "garbage", 300.0, 300.0)
    spike = Fault(S1, "spike", 100.0, 110.0, seen=50.0)
    result = score_faults([garbage, spike], [AlertSeen(S1, "f", "firing", 100.0, received=50.4)],
                          grace_s=30.0, rejected=[S2])
    assert (result.detected, result.rejected, result.missed) == (1, 1, [])
    [match] = [m for m in result.matches if m.fault is spike]
    assert match.delay_s == 0.0 and abs(match.wall_delay_s - 0.4) < 1e-9
    unmeasured = score_faults([Fault(S1, "spike", 100.0, 110.0)],
                              [firing(S1, 104.0)], grace_s=30.0).matches[0]
    assert unmeasured.delay_s == 4.0 and unmeasured.wall_delay_s is None


@pytest.mark.parametrize("published, delivered, complete, missing_email", [
    ([firing(S1, 1.0, "a")], {"email": [("a", "firing")], "webhook": [("a", "firing")]}, True, 0),
    ([firing(S1, 1.0, "a")], {"email": [], "webhook": [("a", "firing")]}, False, 1),
    ([firing(S1, 1.0, "a"), AlertSeen(S1, "a", "resolved", 2.0)],
     {"email": [("a", "firing")], "webhook": [("a", "firing"), ("a", "resolved")]}, False, 1),
    # A resolve folded into a new firing (group interval) need not be delivered.
    ([firing(S1, 1.0, "a"), AlertSeen(S1, "a", "resolved", 2.0), firing(S1, 3.0, "a")],
     {"email": [("a", "firing")], "webhook": [("a", "firing")]}, True, 0),
    ([], {}, False, 0),
])
def test_score_deliveries(published, delivered, complete, missing_email):
    result = score_deliveries(published, delivered)
    assert result.complete is complete
    assert len(result.missing("email")) == missing_email


def test_traffic_counts_every_topic_family():
    traffic = Traffic(Topics("iotwatch"), rate_window_s=5.0)
    feed = [
        ("iotwatch/readings/plant/boiler-1/temperature", b'{"ts": 1, "value": 21.5}', 0.0),
        ("iotwatch/readings/plant/boiler-1", b'{"ts": 1, "seq": 3, "pressure": 2.0, "flow": 3}',
         1.0),
        ("iotwatch/readings/plant/boiler-1/temperature", b'{"ts": 2, "value": "hot"}', 2.0),
        ("iotwatch/readings/plant/boiler-1/temperature", b"{not json", 2.0),
        ("iotwatch/alerts/plant/boiler-1/temperature",
         b'{"fingerprint": "f1", "state": "firing", "ts": "2026-01-20T10:30:00Z"}', 3.0),
        ("iotwatch/truth/plant/boiler-1/temperature",
         b'{"kind": "spike", "start": "2026-01-20T10:29:50Z", "end": "2026-01-20T10:29:50Z"}',
         3.0),
        ("iotwatch/deadletter/detector",
         b'{"topic": "iotwatch/readings/plant/pump-1/power", "reason": "non_numeric"}', 4.0),
        ("iotwatch/status/detector", b'{"service": "detector", "state": "online"}', 4.0),
        ("elsewhere/readings/x/y/z", b'{"value": 1}', 4.0),
    ]
    for topic, payload, now in feed:
        traffic.on_message(topic, payload, now)
    assert traffic.readings_total == 4           # 1 + 2 (device form) + 1 (bad value seen)
    assert traffic.unreadable == 1
    assert traffic.streams[("plant", "boiler-1", "temperature")].last_value == 21.5
    assert traffic.firing() == [("plant", "boiler-1", "temperature")]
    alert = traffic.snapshot_alerts()[0]
    assert (alert.fingerprint, alert.state, alert.at) == ("f1", "firing", 1768905000.0)
    fault = traffic.snapshot_faults()[0]
    assert (fault.kind, fault.start) == ("spike", 1768904990.0)
    assert traffic.snapshot_rejected() == {("plant", "pump-1", "power")}
    assert traffic.statuses == {"detector": "online"}
    assert traffic.rate(now=4.0) == pytest.approx(4 / 5.0)
    assert traffic.rate(now=100.0) == 0.0


@pytest.mark.parametrize("duration", [configs.MIN_DURATION_S, 45.0, 300.0])
def test_demo_fleet_puts_every_fault_between_warm_up_and_cool_down(duration):
    from publisher.config import PublisherFile
    from publisher.fleet import expand

    config = configs.publisher_config(configs.demo_fleet(duration), duration_s=duration, seed=1,
                                      now=time.time())
    publisher = build_config(config, PublisherFile, environ={}).publisher
    streams = {s.name for s in expand(publisher.fleet)}
    for fault in publisher.fleet.faults.scheduled:
        assert fault.stream in streams
        start_wall = fault.start_s / configs.SPEED
        end_wall = (fault.start_s + fault.duration_s) / configs.SPEED
        assert start_wall >= configs.WARMUP_S and end_wall <= duration - configs.COOL_DOWN_S + 1
    assert publisher.duration_s == duration * configs.SPEED and publisher.truth


def test_generated_service_configs_validate_against_the_services_models(tmp_path):
    from alerting.config import AlertingFile
    from detector.config import DetectorFile

    for sink in ("influxdb", "file"):
        detector = build_config(configs.detector_config(tmp_path, http_port=1, sink=sink,
                                                        influx_url="http://127.0.0.1:2"),
                                DetectorFile, environ={})
        assert detector.detector.output.sink == sink
        assert Path(detector.detector.spool.dir).is_relative_to(tmp_path)
    alerting = build_config(
        configs.alerting_config(tmp_path, http_port=1, smtp_port=2,
                                webhook_url="http://127.0.0.1:3/hook"),
        AlertingFile, environ={configs.ALERTING_WEBHOOK_SECRET_ENV: "s3cret"})
    receiver = alerting.alerting.receivers["operators"]
    assert receiver.email.port == 2 and receiver.webhook.secret.get_secret_value() == "s3cret"


def test_demo_broker_config_keeps_the_projects_security():
    text = demo_config((MOSQUITTO_DIR / "mosquitto.conf").read_text(), port=4242,
                       paths={"password_file": "/t/passwd", "acl_file": "/t/acl",
                              "persistence_location": "/t/data/"})
    options = [line.split() for line in text.splitlines() if line and not line.startswith("#")]
    assert [o for o in options if o[0] == "listener"] == [["listener", "4242", "127.0.0.1"]]
    assert ["allow_anonymous", "false"] in options
    assert ["password_file", "/t/passwd"] in options and ["acl_file", "/t/acl"] in options
    assert not any(o[0] in ("cafile", "certfile", "keyfile") for o in options)


def test_summary_passes_only_when_everything_was_caught_and_delivered():
    caught = score_faults([SPIKE], [firing(S1, 100.0, "a")], 30.0)
    delivered = score_deliveries([firing(S1, 100.0, "a")],
                                 {"email": [("a", "firing")], "webhook": [("a", "firing")]})
    passed = Summary(caught, delivered, 10, 1, {"readings": 10}, "file", 100.0)
    assert passed.passed and "RESULT: PASS" in render_summary(passed)
    undelivered = score_deliveries([firing(S1, 100.0, "a")], {"email": [], "webhook": []})
    assert not Summary(caught, undelivered, 10, 1, {}, "file", 100.0).passed
    missed = score_faults([SPIKE], [], 30.0)
    failed = Summary(missed, delivered, 10, 1, {}, "file", 100.0)
    assert not failed.passed and "MISSED" in render_summary(failed)
    assert not Summary(caught, delivered, 10, 1, {}, "file", 100.0, ["boom"]).passed


def test_live_view_shows_firing_streams_first():
    state = LiveState(3.0, 45.0, 10, 2.0, {S2: (5, 1.0, False), S1: (5, 99.0, True)}, [S1], 1, 1,
                      {"email": 1, "webhook": 1}, last_deliveries=["email [FIRING:1] ..."])
    lines = render_live(state).splitlines()
    table = [line for line in lines if line.startswith("plant/")]
    assert table[0].startswith("plant/boiler-1/temperature") and table[0].endswith("FIRING")
    assert lines[-1].strip() == "email [FIRING:1] ..."
