"""InfluxDB line protocol, built as plain strings (about 5x cheaper than client ``Point``s).

Escaping follows the line protocol reference: measurements escape commas and spaces; tag
keys, tag values and field keys escape commas, equals signs and spaces; string field
values escape double quotes and backslashes. Timestamps are integers in the write's
precision (``influxdb.precision``: microseconds unless configured; ``timestamp``), so two
readings of a stream a fraction of a millisecond apart stay two points. Non-finite floats
cannot be written and are left out.

>>> series = SeriesKeys("readings")
>>> series.prefix("plant 1", "boiler,1", "temp=C")
'readings,site=plant\\\\ 1,device=boiler\\\\,1,metric=temp\\\\=C'
>>> reading_line(series.prefix("s", "d", "t"), 1768905000.123, 21.5,
...              {"zscore": 0.4}, 0.12, 0.5, False)
'readings,site=s,device=d,metric=t value=21.5,score=0.12,threshold=0.5,anomaly=0i,score_zscore=0.4 1768905000123000'
>>> string_field('say "hi" \\\\ bye')
'"say \\\\"hi\\\\" \\\\\\\\ bye"'
>>> parse_tags('readings,site=a\\\\ b,device=d,metric=m value=1 5')
{'site': 'a b', 'device': 'd', 'metric': 'm'}
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from math import isfinite as _isfinite

_MEASUREMENT = str.maketrans({",": "\\,", " ": "\\ "})
_KEY = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})
_NEWLINES = str.maketrans({"\n": " ", "\r": " "})
_UNESCAPE = re.compile(r"\\(.)")
_SCORE_KEYS: dict[str, str] = {}  # detector name -> ",score_<escaped name>="


def escape_measurement(name: str) -> str:
    return name.translate(_NEWLINES).translate(_MEASUREMENT)


def escape_key(text: str) -> str:
    """Escape a tag key, tag value or field key."""
    return text.translate(_NEWLINES).translate(_KEY)


def string_field(text: str) -> str:
    """A quoted string field value."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').translate(_NEWLINES) + '"'


def float_field(value: float) -> str | None:
    """The text of a float field, or None when the value cannot be written (NaN, inf)."""
    return repr(float(value)) if math.isfinite(value) else None


PRECISIONS = ("ms", "us", "ns")


def timestamp(ts: float, precision: str = "us") -> int:
    """Epoch seconds as a line-protocol timestamp in ``precision`` (ms, us or ns).

    Readings carry float seconds: microseconds are all they hold (a float near 1.8e9 s
    resolves ~0.24 us), so ``ns`` is the microsecond count times 1000, not float noise.

    >>> timestamp(1768905000.1234567, "ms"), timestamp(1768905000.1234567)
    (1768905000123, 1768905000123457)
    >>> timestamp(1768905000.1234567, "ns")
    1768905000123457000
    """
    if precision == "us":
        return round(ts * 1_000_000)
    if precision == "ms":
        return round(ts * 1000)
    if precision == "ns":
        return round(ts * 1_000_000) * 1000
    raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


PER_SECOND = {"ms": 1000, "us": 1_000_000, "ns": 1_000_000_000}


def rescale_timestamps(body: bytes, source: str, target: str) -> bytes:
    """``body`` with each line's timestamp (its last field) converted between precisions.

    For lines written in one unit that must be stored in another (a spool written by a
    run with another ``influxdb.precision``).

    >>> rescale_timestamps(b'm v=1 1768905000123\\nm,t=a s="x 1" 5', "ms", "us")
    b'm v=1 1768905000123000\\nm,t=a s="x 1" 5000'
    >>> rescale_timestamps(b"m v=1 1768905000123457", "us", "ms")
    b'm v=1 1768905000123'
    """
    if source == target:
        return body
    up, down = PER_SECOND[target], PER_SECOND[source]
    lines = []
    for line in body.split(b"\n"):
        head, _, stamp = line.rpartition(b" ")
        if head and stamp.isdigit():
            number = int(stamp)
            number = number * (up // down) if up >= down else (number + (down // up) // 2) // (down // up)
            line = head + b" " + str(number).encode()
        lines.append(line)
    return b"\n".join(lines)


class SeriesKeys:
    """Caches the escaped ``measurement,site=..,device=..,metric=..`` prefix per stream."""

    def __init__(self, measurement: str, max_entries: int = 1_000_000) -> None:
        self.measurement = escape_measurement(measurement)
        self._cache: dict[tuple[str, str, str], str] = {}
        self._max = max_entries

    def prefix(self, site: str, device: str, metric: str) -> str:
        key = (site, device, metric)
        found = self._cache.get(key)
        if found is None:
            found = (f"{self.measurement},site={escape_key(site)},device={escape_key(device)}"
                     f",metric={escape_key(metric)}")
            if len(self._cache) >= self._max:
                self._cache.clear()
            self._cache[key] = found
        return found


def reading_line(prefix: str, ts: float, value: float | None, scores: Mapping[str, float],
                 score: float, threshold: float, anomaly: bool, precision: str = "us") -> str:
    """One reading's point: value, calibrated score, threshold, flag and raw scores."""
    # The hot path of the service: one f-string when every number is finite.
    flag = "1i" if anomaly else "0i"
    score, threshold = float(score), float(threshold)
    if value is not None and _isfinite(value) and _isfinite(score) and _isfinite(threshold):
        fields = f"value={float(value)!r},score={score!r},threshold={threshold!r},anomaly={flag}"
    else:
        named = (("value", value), ("score", score), ("threshold", threshold))
        fields = ",".join([*(f"{name}={float(number)!r}" for name, number in named
                             if number is not None and _isfinite(number)), f"anomaly={flag}"])
    for name, raw in scores.items():
        raw = float(raw)
        if _isfinite(raw):
            key = _SCORE_KEYS.get(name)
            if key is None:
                key = _SCORE_KEYS[name] = f",score_{escape_key(name)}="
            fields += f"{key}{raw!r}"
    return f"{prefix} {fields} {timestamp(ts, precision)}"


def alert_line(measurement: str, *, site: str, device: str, metric: str, severity: str,
               state: str, fingerprint: str, value: float, score: float, text: str,
               ts: float, precision: str = "us") -> str:
    """An alert event's point (Grafana annotations read these).

    >>> alert_line("alerts", site="s", device="d", metric="t", severity="critical",
    ...            state="firing", fingerprint="ab12", value=9.0, score=0.97,
    ...            text="t on s/d is anomalous", ts=10.0, precision="ms")
    'alerts,site=s,device=d,metric=t,severity=critical,state=firing fingerprint="ab12",value=9.0,score=0.97,text="t on s/d is anomalous" 10000'
    """
    fields = [f"fingerprint={string_field(fingerprint)}"]
    for name, number in (("value", value), ("score", score)):
        rendered = float_field(number)
        if rendered is not None:
            fields.append(f"{name}={rendered}")
    fields.append(f"text={string_field(text)}")
    return (f"{escape_measurement(measurement)},site={escape_key(site)},"
            f"device={escape_key(device)},metric={escape_key(metric)},"
            f"severity={escape_key(severity)},state={escape_key(state)} "
            f"{','.join(fields)} {timestamp(ts, precision)}")


def counters_line(measurement: str, tags: Mapping[str, str], counters: Mapping[str, int],
                  ts: float, precision: str = "us") -> str:
    """Integer counter fields, e.g. the service's own statistics.

    >>> counters_line("iotwatch_service", {"service": "detector"}, {"readings_in": 5}, 1.0)
    'iotwatch_service,service=detector readings_in=5i 1000000'
    """
    tag_text = "".join(f",{escape_key(k)}={escape_key(v)}" for k, v in tags.items())
    fields = ",".join(f"{escape_key(k)}={int(v)}i" for k, v in counters.items())
    return f"{escape_measurement(measurement)}{tag_text} {fields} {timestamp(ts, precision)}"


def parse_tags(line: str) -> dict[str, str]:
    """The tags of a line (for messages about a line the database refused)."""
    head = _split_unescaped(line, " ")[0]
    parts = _split_unescaped(head, ",")[1:]
    tags = {}
    for part in parts:
        pieces = _split_unescaped(part, "=", 1)
        if len(pieces) == 2:
            tags[_UNESCAPE.sub(r"\1", pieces[0])] = _UNESCAPE.sub(r"\1", pieces[1])
    return tags


def _split_unescaped(text: str, separator: str, limit: int = -1) -> list[str]:
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == separator and limit != 0:
            parts.append("".join(current))
            current = []
            limit -= 1
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parse_line(line: str) -> tuple[str, dict[str, str], dict[str, float | int | str | bool], int]:
    """``(measurement, tags, fields, timestamp)`` of one line (the file sink's store).

    Integers (``5i``) come back as int, strings unquoted, ``t``/``f`` as bool; the timestamp
    is in the line's own unit (``influxdb.precision`` for the lines this module builds). ValueError names what
    is wrong with a line that cannot be read.

    >>> parse_line('alerts,site=s,state=firing text="a, b \\\\"c\\\\"",score=0.9,n=2i 1000')
    ('alerts', {'site': 's', 'state': 'firing'}, {'text': 'a, b "c"', 'score': 0.9, 'n': 2}, 1000)
    >>> parse_line("readings value=1")
    Traceback (most recent call last):
    ...
    ValueError: expected 'measurement[,tags] fields timestamp', got 'readings value=1'
    """
    parts = _split_fields(line.strip(), " ")
    if len(parts) != 3:
        raise ValueError(f"expected 'measurement[,tags] fields timestamp', got {line[:80]!r}")
    head, field_text, stamp = parts
    names = _split_unescaped(head, ",")
    tags = {}
    for part in names[1:]:
        pieces = _split_unescaped(part, "=", 1)
        if len(pieces) == 2:
            tags[_UNESCAPE.sub(r"\1", pieces[0])] = _UNESCAPE.sub(r"\1", pieces[1])
    fields: dict[str, float | int | str | bool] = {}
    for part in _split_fields(field_text, ","):
        key, _, raw = part.partition("=")
        fields[_UNESCAPE.sub(r"\1", key)] = _field_value(raw)
    return _UNESCAPE.sub(r"\1", names[0]), tags, fields, int(stamp)


def _split_fields(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside quoted strings and escapes."""
    parts, start, quoted, escaped = [], 0, False, False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _field_value(raw: str) -> float | int | str | bool:
    if raw.startswith('"'):
        return re.sub(r'\\(["\\])', r"\1", raw[1:-1])
    if raw.endswith("i"):
        return int(raw[:-1])
    if raw in ("t", "T", "true", "True", "TRUE"):
        return True
    if raw in ("f", "F", "false", "False", "FALSE"):
        return False
    return float(raw)
