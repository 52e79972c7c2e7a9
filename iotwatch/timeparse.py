"""The one place where timestamps are parsed and formatted.

Timestamps travel as RFC 3339 strings or epoch numbers and live in memory as
float epoch seconds (UTC).

>>> parse_timestamp("2026-01-20T10:30:00.123Z")
1768905000.123
>>> parse_timestamp(1768905000123)          # epoch milliseconds
1768905000.123
>>> format_rfc3339(1768905000.123)
'2026-01-20T10:30:00.123Z'
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from iotwatch import IotwatchError

# Epoch numbers above this are milliseconds: 1e11 s is the year 5138.
_MILLISECONDS_ABOVE = 1e11


class TimestampError(IotwatchError, ValueError):
    """A timestamp that cannot be parsed, or lies outside the accepted window."""


def parse_timestamp(value: object) -> float:
    """Return epoch seconds for an RFC 3339 string or an epoch number (s or ms).

    Strings without a zone are taken as UTC (NAB and SKAB files are written so).
    """
    if isinstance(value, bool):
        raise TimestampError(f"expected RFC 3339 string or epoch number, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
        if not math.isfinite(seconds):
            raise TimestampError(f"timestamp must be finite, got {value!r}")
        return seconds / 1000.0 if abs(seconds) > _MILLISECONDS_ABOVE else seconds
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            try:
                return parse_timestamp(float(text))
            except ValueError:
                raise TimestampError(
                    f"expected RFC 3339 (2026-01-20T10:30:00Z) or epoch seconds/ms, got {value!r}"
                ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    raise TimestampError(
        f"expected RFC 3339 string or epoch number, got {type(value).__name__}"
    )


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
    """Format epoch seconds as RFC 3339 UTC with milliseconds and a ``Z``."""
    millis = round(ts * 1000)
    seconds, ms = divmod(millis, 1000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms:03d}Z"
