"""Shared hypothesis strategies: JSON values that stress the parsers' edges."""

from __future__ import annotations

import json
import math

from hypothesis import strategies as st

# Numbers where conversions break: huge and negative epochs, float limits, big integers.
EDGE_NUMBERS = st.sampled_from([
    0, -1, 1e11, -1e11, 1e11 + 1, 1e17, -1e17, 1e300, -1e300, 1.7976931348623157e308,
    5e-324, 253_402_300_799, 253_402_300_800, -62_135_596_800, -62_135_596_801,
    253_402_300_799_000, 253_402_300_800_000, 2**63, -(2**63) - 1, 2**64, 10**400,
    1_768_905_000, 1_768_905_000_123, float("nan"), float("inf"), float("-inf")])
NUMBERS = st.one_of(EDGE_NUMBERS, st.integers(), st.floats(allow_nan=True, allow_infinity=True))
TIME_TEXT = st.one_of(
    st.sampled_from(["2026-01-20T10:30:00Z", "2026-01-20T10:30:00.123+05:30",
                     "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59",
                     "9999-12-31T23:59:59.999999Z", "1e17", "-1e300", "nan", "inf",
                     " 1768905000 ", "1768905000123", "2026-13-45T99:00:00Z", "", "T",
                     "2026-01-20", "20260120T103000Z", "1" * 5000]),
    st.datetimes().map(lambda d: d.isoformat()),
    st.text(max_size=80))
SEGMENT_TEXT = st.one_of(st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True),
                         st.text(max_size=70),
                         st.sampled_from(["a\n", "a b", "é", "x" * 65, "", "+", "#", "a/b"]))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TIME_TEXT, st.text(max_size=30))
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12)


def dumps(value: object) -> bytes:
    """JSON as the wire may carry it: NaN/Infinity as Python's json writes them, integers
    of any size."""
    return json.dumps(value, allow_nan=True).encode()


def is_finite(x: float) -> bool:
    return isinstance(x, float) and math.isfinite(x)
