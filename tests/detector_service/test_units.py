"""Pure parts of the service: configuration, acks, the message handler, /predict bodies,
start-up reconciliation of alert states."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.acks import Acker, Batch
from detector.api import predict_request
from detector.config import DetectorFile
from detector.engine import Engine, EngineSettings
from detector.handler import MessageHandler
from detector.reconcile import stale_alerts
from detector.sequence import SequenceTracker
from iotwatch.config import errors_of, load_config
from iotwatch.contracts import Alert, Rejected
from iotwatch.parse import ParseLimits, ReadingParser
from iotwatch.topics import Topics

PROJECT = Path(__file__).resolve().parents[2]
NOW = 1768906000.0  # when the handler "received" the readings below


# -- configuration ---------------------------------------------------------------------------

def test_sample_config_is_valid_and_engine_keys_nest_under_detector():
    config = load_config(PROJECT / "config" / "detector.yaml", environ={})
    assert isinstance(config, DetectorFile)
    assert config.detector.detectors.hst.window_size == 250
    assert config.detector.input.ack_batch == 200
    assert config.detector.output.sink == "influxdb"


@pytest.mark.parametrize(("data", "expected"), [
    ({"detector": {"detectors": {"hst": {"window_size": 0}}}},
     "detector.detectors.hst.window_size: must be >= 1, got 0"),
    ({"detector": {"spool": {"max_bytes": 10}}}, "detector.spool.max_bytes: must be >= 65536"),
    ({"detector": {"input": {"subscriptions": ["a/#/b"]}}},
     "detector.input.subscriptions: must be MQTT topic filters"),
    ({"detector": {"output": {"alert_state_on_resolve": "keep"}}},
     "detector.output.alert_state_on_resolve: must be one of 'clear' or 'resolved'"),
    ({"detector": {"spoool": {}}}, "detector.spoool: unknown key"),
    ({"influxdb": {"token": "secret"}}, "influxdb.token: secrets must not be written in the YAML"),
])
def test_config_errors_name_the_key(data, expected):
    errors = errors_of(DetectorFile, data)
    assert any(line.startswith(expected) for line in errors), errors


# -- acks -----------------------------------------------------------------------------------

class Info:
    def __init__(self, done: bool) -> None:
        self.done = done

    def is_published(self) -> bool:
        return self.done


def test_acks_go_out_in_order_once_publishes_are_confirmed():
    sent: list[int] = []
    acker = Acker(lambda mid, qos: sent.append(mid), lambda: 3)
    pending = Info(False)
    acker.add(Batch(tokens=[(3, 1, 1, 0.0)], publishes=[pending]))
    acker.add(Batch(tokens=[(3, 2, 1, 0.0), (3, 3, 0, 0.0)]))
    assert acker.release() == 0 and acker.pending == 3
    pending.done = True
    assert acker.release() == 2 and sent == [1, 2]  # QoS 0 needs no ack
    assert acker.pending == 0 and len(acker) == 0


def test_acks_of_an_earlier_connection_are_dropped():
    sent: list[int] = []
    generation = [1]
    acker = Acker(lambda mid, qos: sent.append(mid), lambda: generation[0])
    acker.add(Batch(tokens=[(1, 10, 1, 0.0)]))
    generation[0] = 2  # reconnected: the broker sends message 10 again, maybe as another id
    acker.release()
    assert sent == []


# -- the handler -----------------------------------------------------------------------------

def handler(**settings) -> MessageHandler:
    engine_settings = EngineSettings(**{"enabled": ["zscore"], **settings})
    return MessageHandler(Engine(engine_settings), ReadingParser(Topics("iotwatch"),
                                                                  ParseLimits()))


def test_per_device_message_fans_out_and_adds_a_device_outcome():
    h = handler()
    done = None
    for i in range(50):
        done = h.handle("iotwatch/readings/s/d",
                        f'{{"ts": {1768905000 + i}, "temperature": {20 + i % 3}, '
                        f'"humidity": {40 + i % 5}}}'.encode(), NOW)
    assert done.readings == 2
    metrics = [line.split(" ")[0].split("metric=")[1] for line in done.lines]
    assert metrics == ["temperature", "humidity", "_device"]
    assert "value=" not in done.lines[2]


def test_device_outcomes_can_be_left_out():
    h = MessageHandler(Engine(EngineSettings(enabled=["zscore"])),
                       ReadingParser(Topics("iotwatch")), device_points=False)
    done = h.handle("iotwatch/readings/s/d", b'{"ts": 1768905000, "a": 1, "b": 2}', NOW)
    assert len(done.lines) == 2


def test_a_spike_gives_one_firing_alert_with_its_point():
    h = handler()
    for i in range(200):
        h.handle("iotwatch/readings/s/d/t", f'{{"ts": {1768905000 + i}, "value": {20 + (i % 7) * 0.1}}}'
                 .encode(), NOW)
    done = h.handle("iotwatch/readings/s/d/t", b'{"ts": 1768905300, "value": 90}', NOW)
    assert [a.state for a in done.alerts] == ["firing"]
    alert = done.alerts[0]
    assert alert.annotations["summary"].startswith("t on s/d is anomalous: 90")
    assert done.lines[1].startswith("alerts,site=s,device=d,metric=t,severity=critical,"
                                    "state=firing ")


def test_rejections_carry_reason_and_touch_no_state():
    h = handler()
    done = h.handle("iotwatch/readings/s/d/t", b'{"value": NaN}', 0.0)
    assert done.rejected.reason.value == "non_finite" and not done.lines
    assert h.stream_count() == 0


def test_predict_says_unknown_stream_and_warming_up_instead_of_a_silent_zero():
    h = handler(calibration={"warmup": 20})
    reading = h.parser.parse("iotwatch/readings/s/d/t", b'{"ts": 1768905000, "value": 21}',
                             NOW)
    [unknown] = h.peek(reading)
    assert unknown["score"] == 0.0 and unknown["status"] == "unknown stream"
    assert unknown["readings_needed"] == 50 and "was ever received" in unknown["detail"]
    for i in range(35):
        h.handle("iotwatch/readings/s/d/t", f'{{"ts": {1768905000 + i}, "value": {20 + i % 3}}}'
                 .encode(), NOW)
    [warming] = h.peek(reading)
    assert warming["status"] == "warming up" and warming["readings_needed"] == 15
    assert "35 readings learned, about 15 more" in warming["detail"]
    for i in range(35, 60):
        h.handle("iotwatch/readings/s/d/t", f'{{"ts": {1768905000 + i}, "value": {20 + i % 3}}}'
                 .encode(), NOW)
    [scored] = h.peek(reading)
    assert scored["status"] == "scored" and scored["readings_needed"] == 0
    assert "detail" not in scored


def test_streams_carry_their_sequence_counts():
    h = MessageHandler(Engine(EngineSettings(enabled=["zscore"])),
                       ReadingParser(Topics("iotwatch")), sequences=SequenceTracker())
    for seq in (0, 1, 4, 4):
        h.handle("iotwatch/readings/s/d/t", f'{{"value": 1, "seq": {seq}}}'.encode(), NOW)
    h.handle("iotwatch/readings/s/d", b'{"seq": 7, "a": 1, "b": 2}', NOW)
    h.handle("iotwatch/readings/s/e/t", b'{"value": 1}', NOW)
    summaries = h.summaries()
    assert summaries["s/d/t"]["sequence"]["missing"] == 2
    assert summaries["s/d/t"]["sequence"]["duplicated"] == 1
    assert summaries["s/d/a"]["sequence"]["last_seq"] == 7
    assert summaries["s/e/t"]["sequence"] is None


# -- /predict bodies ---------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "topic"), [
    (b'{"site": "s", "device": "d", "metric": "m", "value": 1}', "iotwatch/readings/s/d/m"),
    (b'{"site": "s", "device": "d", "a": 1, "b": 2}', "iotwatch/readings/s/d"),
])
def test_predict_bodies_map_to_reading_topics(body, topic):
    assert predict_request(body, Topics())[0] == topic


@pytest.mark.parametrize(("body", "reason"), [
    (b"not json", "bad_json"), (b"[1]", "not_object"),
    (b'{"site": "s s", "device": "d", "value": 1}', "bad_field"),
])
def test_bad_predict_bodies_are_rejected(body, reason):
    with pytest.raises(Rejected) as rejected:
        predict_request(body, Topics())
    assert rejected.value.reason.value == reason


# -- start-up reconciliation -----------------------------------------------------------------

def alert(state: str = "firing", metric: str = "m") -> Alert:
    return Alert("0123456789abcdef", state, "warning", "s", "d", metric, "anomaly", 1.0, 0.7,
                 0.5, 10.0, 11.0)


@pytest.mark.parametrize(("engine_state", "stale"), [
    (None, True),           # the stream is not in the checkpoint at all
    ("normal", True),
    ("pending", True),
    ("firing", False),
    ("suppressed", False),  # still anomalous, held quiet by flap suppression
])
def test_firing_alerts_the_engine_does_not_hold_are_resolved(engine_state, stale):
    summaries = {} if engine_state is None else {"s/d/m": {"alert_state": engine_state}}
    resolved = stale_alerts([alert()], summaries, now=50.0)
    assert bool(resolved) == stale
    if stale:
        assert resolved[0].state == "resolved" and resolved[0].ends_at == 50.0
        assert resolved[0].fingerprint == "0123456789abcdef"
        assert "restart" in resolved[0].annotations["summary"]


def test_retained_resolved_alerts_need_nothing():
    assert stale_alerts([alert("resolved")], {}, now=1.0) == []


def test_an_engine_failure_keeps_the_reading_as_a_value_only_point():
    class Failing(Engine):
        def process(self, *args):
            raise OverflowError("math range error")

    h = MessageHandler(Failing(EngineSettings(enabled=["zscore"])),
                       ReadingParser(Topics("iotwatch")))
    done = h.handle("iotwatch/readings/s/d/t", b'{"ts": 1768905000, "value": 1e300}', NOW)
    assert done.rejected is None and done.readings == 1
    assert done.lines == ["readings,site=s,device=d,metric=t value=1e+300 1768905000000000"]
    assert done.engine_errors == ["s/d/t: OverflowError: math range error"]


def test_published_alerts_and_dead_letters_validate_against_the_contracts():
    import json

    import jsonschema
    import orjson

    from iotwatch.contracts import DeadLetter

    schemas = PROJECT / "config" / "contracts"
    alert_schema = json.loads((schemas / "alert.schema.json").read_text())
    h = handler()
    for i in range(200):
        h.handle("iotwatch/readings/s/d/t",
                 f'{{"ts": {1768905000 + i}, "value": {20 + (i % 7) * 0.1}}}'.encode(), NOW)
    fired = h.handle("iotwatch/readings/s/d/t", b'{"ts": 1768905300, "value": 90}', NOW).alerts
    assert fired
    for alert in [*fired, *stale_alerts(fired, {}, now=NOW)]:
        jsonschema.validate(orjson.loads(alert.to_payload()), alert_schema)
    letter = DeadLetter("detector", "iotwatch/readings/s/d/t", "write_rejected",
                        "partial write: field type conflict", b"readings,site=s value=1 1", NOW)
    jsonschema.validate(orjson.loads(letter.to_payload()),
                        json.loads((schemas / "deadletter.schema.json").read_text()))
