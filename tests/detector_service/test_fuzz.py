"""Fuzzed input: thousands of malformed payloads and topics between valid readings.

The service must stay healthy, dead-letter and count every bad message, and store every
valid reading interleaved with them.
"""

from __future__ import annotations

import json
import random

import orjson
from harness import wait_until

from .service import BASE_TS, Detector, Feeder, detector_config

SITE, FUZZ_SITE, EXTREME_SITE = "site-good", "site-fuzz", "site-extreme"
# Valid readings at the edges of what a float holds: stored whatever the detectors make of them.
EXTREMES = (1e300, -1e300, 1.7976931348623157e308, 5e-324, -5e-324, 0.0, 1e-300)


def malformed(rng: random.Random) -> tuple[str, bytes, str]:
    """(topic, payload, expected reason) of one message that must be rejected."""
    base = f"iotwatch/readings/{FUZZ_SITE}/dev-{rng.randrange(5)}"
    topic = f"{base}/m{rng.randrange(5)}"
    ts = BASE_TS + rng.randrange(10_000)
    kind = rng.randrange(17)
    if kind == 0:
        return topic, rng.randbytes(rng.randrange(1, 200)), "bad_json"
    if kind == 1:
        return topic, orjson.dumps(rng.choice([[1, 2], 3, "text", None, True])), "not_object"
    if kind == 2:
        return topic, orjson.dumps({"ts": ts, "val": 1.0}), "missing_value"
    if kind == 3:
        value = rng.choice(["12.5", True, None, [1], {"v": 1}, ""])
        return topic, orjson.dumps({"ts": ts, "value": value}), "non_numeric"
    if kind == 4:
        text = json.dumps({"ts": ts, "value": rng.choice([float("nan"), float("inf"),
                                                          float("-inf")])})
        return topic, text.encode(), "non_finite"
    if kind == 5:
        return topic, orjson.dumps({"ts": rng.choice(["yesterday", "2026-13-45T99:00:00Z",
                                                      [1], {"a": 1}]), "value": 1.0}), \
            "bad_timestamp"
    if kind == 6:
        return topic, orjson.dumps({"ts": rng.choice([0, 86_400, BASE_TS + 10 * 365 * 86_400]),
                                    "value": 1.0}), "absurd_timestamp"
    if kind == 7:
        return topic, b'{"value": 1.0, "pad": "' + b"x" * 70_000 + b'"}', "oversize"
    if kind == 8:
        return topic, orjson.dumps({"ts": ts, "value": 1.0, "seq": rng.choice(["7", 1.5])}), \
            "bad_field"
    if kind == 9:
        return base, orjson.dumps({"ts": ts, rng.choice(["a b", "x" * 80, "é"]): 1.0}), \
            "bad_field"
    if kind == 10:
        return base, orjson.dumps({"ts": ts, **{f"m{i}": 1.0 for i in range(100)}}), "bad_field"
    if kind == 11:
        return base, orjson.dumps({"ts": ts, "seq": 1}), "missing_value"
    if kind == 12:
        return f"{base}/m/extra/levels", orjson.dumps({"value": 1.0}), "bad_topic"
    if kind == 13:
        return rng.choice([f"iotwatch/readings/{FUZZ_SITE}", f"iotwatch/readings/{FUZZ_SITE}//m",
                           f"{base}/{'y' * 70}", f"{base}/sp ace"]), \
            orjson.dumps({"value": 1.0}), "bad_topic"
    if kind == 14:
        return topic, b"[" * 5000 + b"]" * 5000, "bad_json"  # nested too deep to parse
    if kind == 15:
        return topic, b"", "bad_json"
    return topic, b'{"ts": 1, "value": 1.0', "bad_json"


def test_fuzzed_input_is_dead_lettered_and_valid_readings_all_stored(tmp_path, mosquitto,
                                                                     influxdb, mqtt_collector):
    rng = random.Random(20260120)
    db = influxdb.create_database()
    config = detector_config(tmp_path, mosquitto, sites=(SITE, FUZZ_SITE, EXTREME_SITE),
                             influx={"url": influxdb.url, "database": db})
    detector = Detector(tmp_path, config, mosquitto)
    dead = mqtt_collector(mosquitto, "iotwatch/deadletter/detector")
    try:
        detector.start()
        feeder = Feeder(mosquitto)
        valid, extreme, expected = 0, 0, {}
        for i in range(1000):
            feeder.reading(SITE, f"dev-{i % 4}", "temperature", BASE_TS + i, 20.0 + (i % 9) * 0.1)
            valid += 1
            if i % 10 == 0:
                feeder.reading(EXTREME_SITE, f"dev-{i % 3}", "power", BASE_TS + i,
                               rng.choice(EXTREMES))
                extreme += 1
            for _ in range(3):
                topic, payload, reason = malformed(rng)
                feeder.raw(topic, payload)
                expected[reason] = expected.get(reason, 0) + 1
        feeder.close()
        bad = sum(expected.values())

        wait_until(lambda: detector.metric("iotwatch_detector_messages_received_total")
                   >= valid + extreme + bad, 120, what="every message received")
        wait_until(lambda: influxdb.count("readings", db=db) >= valid + extreme, 60,
                   what="every valid reading stored")
        assert influxdb.count("readings", db=db, where=f"\"site\" = '{SITE}'") == valid
        assert influxdb.count("readings", db=db, where=f"\"site\" = '{EXTREME_SITE}'") == extreme
        assert influxdb.count("readings", db=db, where=f"\"site\" = '{FUZZ_SITE}'") == 0
        counted = {reason: int(detector.metric("iotwatch_detector_rejected_total",
                                               f'reason="{reason}"')) for reason in expected}
        assert counted == expected
        letters = [orjson.loads(p) for p in dead.wait_for(bad, timeout=60) and dead.payloads()]
        assert len(letters) == bad
        assert {letter["reason"] for letter in letters} == set(expected)
        assert all(letter["size"] <= 1024 or letter["truncated"] for letter in letters)

        status, health = detector.get("/health")
        assert status == 200, health
        assert detector.terminate() == 0
    finally:
        detector.close()
