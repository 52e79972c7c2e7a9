"""Line protocol building: escaping by the spec, fields, timestamps; checked on a real parser."""

from __future__ import annotations

import math

import pytest

from detector.lineprotocol import (
    SeriesKeys,
    alert_line,
    counters_line,
    escape_key,
    escape_measurement,
    parse_tags,
    reading_line,
    string_field,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("plain", "plain"),
    ("a b", "a\\ b"),
    ("a,b", "a\\,b"),
    ("a=b", "a\\=b"),
    ("a\nb", "a\\ b"),           # a newline would end the line: written as an escaped space
    ("temp.C_1-x", "temp.C_1-x"),
])
def test_tag_keys_values_and_field_keys_escape_comma_equals_space(text, expected):
    assert escape_key(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("readings", "readings"), ("my readings", "my\\ readings"), ("a,b", "a\\,b"),
    ("a=b", "a=b"),  # measurements do not escape '='
])
def test_measurements_escape_comma_and_space(text, expected):
    assert escape_measurement(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ('say "hi"', '"say \\"hi\\""'), ("back\\slash", '"back\\\\slash"'), ("", '""'),
])
def test_string_fields_escape_quotes_and_backslashes(text, expected):
    assert string_field(text) == expected


def test_reading_line_has_every_field_and_a_us_timestamp():
    prefix = SeriesKeys("readings").prefix("s", "d", "m")
    line = reading_line(prefix, 1768905000.1234, 2.5, {"zscore": 1.25, "hst": 0.5}, 0.75, 0.5,
                        True)
    assert line == ("readings,site=s,device=d,metric=m value=2.5,score=0.75,threshold=0.5,"
                    "anomaly=1i,score_zscore=1.25,score_hst=0.5 1768905000123400")
    assert reading_line(prefix, 1768905000.1234, 2.5, {}, 0.75, 0.5, True,
                        precision="ms").endswith(" 1768905000123")


def test_non_finite_numbers_are_left_out_not_written_as_nan():
    line = reading_line("m,site=s", 1.0, math.nan, {"zscore": math.inf}, 0.1, 0.5, False)
    assert line == "m,site=s score=0.1,threshold=0.5,anomaly=0i 1000000"


def test_device_outcome_has_no_value_field():
    line = reading_line("readings,site=s,device=d,metric=_device", 1.0, None, {}, 0.2, 0.5, False)
    assert "value=" not in line


def test_alert_and_counter_lines():
    line = alert_line("alerts", site="s", device="d", metric="m", severity="warning",
                      state="resolved", fingerprint="0123456789abcdef", value=1.0, score=0.1,
                      text='m "back" to normal', ts=2.0)
    assert line == ('alerts,site=s,device=d,metric=m,severity=warning,state=resolved '
                    'fingerprint="0123456789abcdef",value=1.0,score=0.1,'
                    'text="m \\"back\\" to normal" 2000000')
    assert counters_line("svc", {"service": "detector"}, {"a": 1, "b": 2}, 3.0, "ms") == \
        "svc,service=detector a=1i,b=2i 3000"


def test_parse_tags_undoes_escaping():
    prefix = SeriesKeys("readings").prefix("a b", "c,d", "e=f")
    assert parse_tags(reading_line(prefix, 1.0, 1.0, {}, 0.0, 0.5, False)) == {
        "site": "a b", "device": "c,d", "metric": "e=f"}


def test_escaped_lines_are_stored_as_written(influxdb):
    """The real parser agrees: awkward names come back intact, floats in any notation."""
    db = influxdb.create_database()
    prefix = SeriesKeys("odd measurement").prefix("site one", "dev,1", "m=x")
    influxdb.write([reading_line(prefix, 1768905000.0, 1e-7, {"zscore": 1e20}, 0.5, 0.5, True)],
                   db=db, precision="u")
    rows = influxdb.query('SELECT * FROM "odd measurement"', db=db)
    assert len(rows) == 1
    row = rows[0]
    assert (row["site"], row["device"], row["metric"]) == ("site one", "dev,1", "m=x")
    assert row["value"] == 1e-7 and row["score_zscore"] == 1e20 and row["anomaly"] == 1
    assert row["time"] == 1768905000000
