"""Both sides of the wire against the JSON Schemas in config/contracts/."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import orjson
import pytest
from referencing import Registry, Resource

from iotwatch.contracts import Alert, DeadLetter, Reading, Reason, Status, device_payload
from iotwatch.parse import ReadingParser, parse_alert
from iotwatch.topics import Topics

CONTRACTS = Path(__file__).resolve().parents[2] / "config" / "contracts"
SCHEMAS = {p.name: json.loads(p.read_text()) for p in CONTRACTS.glob("*.schema.json")}
REGISTRY = Registry().with_resources(
    (name, Resource.from_contents(schema)) for name, schema in SCHEMAS.items())
NOW = 1_768_905_000.0


def validate(schema_name: str, payload: bytes) -> None:
    validator = jsonschema.Draft202012Validator(SCHEMAS[schema_name], registry=REGISTRY,
                                                format_checker=jsonschema.FormatChecker())
    validator.validate(orjson.loads(payload))


def test_every_schema_is_a_valid_schema() -> None:
    assert set(SCHEMAS) == {"reading.schema.json", "device-reading.schema.json",
                            "alert.schema.json", "deadletter.schema.json", "status.schema.json",
                            "alertmanager-webhook.schema.json"}
    for schema in SCHEMAS.values():
        jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize(("example", "schema"), [
    ("reading.json", "reading.schema.json"),
    ("reading-epoch-ms.json", "reading.schema.json"),
    ("device-reading.json", "device-reading.schema.json"),
    ("alert-firing.json", "alert.schema.json"),
    ("alert-resolved.json", "alert.schema.json"),
    ("deadletter.json", "deadletter.schema.json"),
    ("status-online.json", "status.schema.json"),
    ("status-offline.json", "status.schema.json"),
])
def test_examples_validate(example: str, schema: str) -> None:
    validate(schema, (CONTRACTS / "examples" / example).read_bytes())


def test_reading_examples_parse() -> None:
    parser = ReadingParser(Topics())
    single = parser.parse("iotwatch/readings/s/d/temperature",
                          (CONTRACTS / "examples" / "reading.json").read_bytes(), NOW)
    device = parser.parse("iotwatch/readings/s/d",
                          (CONTRACTS / "examples" / "device-reading.json").read_bytes(), NOW)
    assert [r.metric for r in single] == ["temperature"]
    assert [r.metric for r in device] == ["temperature", "humidity", "sound"]


def test_alert_examples_parse_and_fingerprints_are_stable() -> None:
    from iotwatch.contracts import alert_fingerprint

    for name in ("alert-firing.json", "alert-resolved.json"):
        alert = parse_alert((CONTRACTS / "examples" / name).read_bytes())
        assert alert.fingerprint == alert_fingerprint(alert.site, alert.device, alert.metric,
                                                      alert.rule)


def test_what_services_write_validates() -> None:
    validate("reading.schema.json", Reading("s", "d", "m", NOW, 1.5, "C", 3).to_payload())
    validate("reading.schema.json", Reading("s", "d", "m", NOW, 2.0).to_payload())
    validate("device-reading.schema.json",
             device_payload(NOW, {"a": 1.0, "b": 2}, seq=1, units={"a": "C"}))
    alert = Alert(fingerprint="0123456789abcdef", state="resolved", severity="critical",
                  site="s", device="d", metric="m", rule="anomaly", value=1.0, score=0.5,
                  threshold=0.99, starts_at=NOW - 60, ts=NOW, ends_at=NOW,
                  scores={"zscore": 1.0}, annotations={"summary": "back to normal"})
    validate("alert.schema.json", alert.to_payload())
    for payload in (b'{"value": 1}', b"\xff" * 2000):
        letter = DeadLetter("detector", "t", Reason.BAD_JSON.value, "why", payload, NOW)
        validate("deadletter.schema.json", letter.to_payload())
    validate("status.schema.json", Status("detector", "online", ts=NOW).to_payload())
    validate("status.schema.json", Status("detector", "offline", reason="lost").to_payload())


def test_dead_letter_keeps_first_bytes_and_says_so() -> None:
    letter = orjson.loads(DeadLetter("detector", "t", "oversize", "big", b"a" * 5000, NOW).to_payload())
    assert letter["size"] == 5000 and letter["truncated"] and len(letter["payload"]) == 1024


def test_every_reason_is_in_the_dead_letter_schema() -> None:
    allowed = set(SCHEMAS["deadletter.schema.json"]["properties"]["reason"]["enum"])
    assert {reason.value for reason in Reason} == allowed
