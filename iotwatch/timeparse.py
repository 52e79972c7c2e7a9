"""The one place where timestamps are parsed and formatted.

Timestamps travel as RFC 3339 strings or epoch numbers and live in memory as
float epoch seconds (UTC).

>>> parse_timestamp("2026-01-20T10:30:00.123Z")
1768905000.123
>>> parse_timestamp(1768905000123)          # epoch milliseconds
1768905000.123
>>> format_rfc3339(1768905000.123)
'2026-01-20T10:30:00.123Z'
>>> parse_timestamp(1e17)                   # 1e14 s: the year 3 million
Traceback (most recent call last):
...
iotwatch.timeparse.TimestampOutOfRange: timestamp 1e+17 is 1e+14 s since the epoch, outside the years 1-9999
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from iotwatch import IotwatchError

# Epoch numbers above this are milliseconds: 1e11 s is the year 5138.
_MILLISECONDS_ABOVE = 1e11
# What datetime can hold, 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z: every timestamp
# parsed here lies within, so formatting it (or any date arithmetic) can never raise.
EARLIEST_S = -62_135_596_800.0
LATEST_S = 253_402_300_799.0
# Longer strings are no timestamp; refusing them first bounds the parsing work.
MAX_TEXT_CHARS = 64


class TimestampError(IotwatchError, ValueError):
    """A timestamp that cannot be parsed, or lies outside the accepted window."""


class TimestampOutOfRange(TimestampError):
    """A well-formed timestamp outside the years 1-9999 (e.g. a clock off by 10^6)."""


def parse_timestamp(value: object) -> float:
    """Return epoch seconds for an RFC 3339 string or an epoch number (s or ms).

    Strings without a zone are taken as UTC (NAB and SKAB files are written so).
    Anything else raises ``TimestampError`` (``TimestampOutOfRange`` outside the years
    1-9999), decided before any conversion that could raise something else.
    """
    if isinstance(value, bool):
        raise TimestampError(f"expected RFC 3339 string or epoch number, got {value!r}")
    if isinstance(value, int | float):
        return _epoch_number(value)
    if isinstance(value, str):
        if len(value) > MAX_TEXT_CHARS:
            raise TimestampError(f"expected RFC 3339 string or epoch number, got a string of "
                                 f"{len(value)} characters (at most {MAX_TEXT_CHARS})")
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise TimestampError(
                    f"expected RFC 3339 (2026-01-20T10:30:00Z) or epoch seconds/ms, "
                    f"got {value!r}") from None
            return _epoch_number(number)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        try:
            seconds = parsed.timestamp()  # a zone offset can push year 1 or 9999 over
        except (ValueError, OverflowError, OSError):
            seconds = math.inf
        return _in_range(seconds, value)
    raise TimestampError(
        f"expected RFC 3339 string or epoch number, got {type(value).__name__}"
    )


def _epoch_number(value: int | float) -> float:
    try:
        seconds = float(value)
    except OverflowError:  # an integer beyond any float
        raise TimestampOutOfRange(f"timestamp {_show(value)} is beyond any date") from None
    if not math.isfinite(seconds):
        raise TimestampError(f"timestamp must be finite, got {value!r}")
    return _in_range(seconds / 1000.0 if abs(seconds) > _MILLISECONDS_ABOVE else seconds, value)


def _in_range(seconds: float, value: object) -> float:
    if not EARLIEST_S <= seconds <= LATEST_S:
        raise TimestampOutOfRange(f"timestamp {_show(value)} is {seconds:.3g} s since the "
                                  f"epoch, outside the years 1-9999")
    return seconds


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:40]}..."


def check_plausible(ts: float, now: float, *, max_future_s: float, min_epoch_s: float) -> None:
    """Raise TimestampError if ``ts`` is too far in the future or before ``min_epoch_s``."""
    if ts > now + max_future_s:
        raise TimestampError(
            f"timestamp {format_rfc3339(ts)} is {ts - now:.0f} s in the future "
            f"(at most {max_future_s:.0f} s accepted)"
        )
    if ts < min_epoch_s:
        raise TimestampError(
            f"timestamp {format_rfc3339(ts)} is before {format_rfc3339(min_epoch_s)}"
        )


def format_rfc3339(ts: float) -> str:
    """Format epoch seconds as RFC 3339 UTC with milliseconds and a ``Z``.

    ``ts`` is clamped to the years 1-9999 (what ``parse_timestamp`` returns always is).

    >>> format_rfc3339(-62135596800.0)
    '0001-01-01T00:00:00.000Z'
    """
    if not math.isfinite(ts):
        ts = LATEST_S if ts > 0 else EARLIEST_S
    millis = round(min(max(ts, EARLIEST_S), LATEST_S) * 1000)
    seconds, ms = divmod(millis, 1000)
    d = datetime.fromtimestamp(seconds, UTC)
    # Not strftime: its %Y does not pad years before 1000 to four digits.
    return (f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:"
            f"{d.second:02d}.{ms:03d}Z")
