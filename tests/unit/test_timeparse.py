"""Timestamp parsing: every accepted form, and clear errors for the rest."""

from __future__ import annotations

import pytest

from iotwatch.timeparse import TimestampError, check_plausible, format_rfc3339, parse_timestamp

T = 1_768_905_000.0  # 2026-01-20T10:30:00Z


@pytest.mark.parametrize(("raw", "expected"), [
    ("2026-01-20T10:30:00Z", T),
    ("2026-01-20T10:30:00.250Z", T + 0.25),
    ("2026-01-20T10:30:00+00:00", T),
    ("2026-01-20T12:30:00+02:00", T),
    ("2026-01-20T10:30:00", T),            # no zone: UTC, as NAB and SKAB files are written
    ("2026-01-20 10:30:00", T),
    ("2026-01-20 10:30:00.000000", T),     # NAB label files
    (" 2026-01-20T10:30:00Z ", T),
    (1768905000, T),
    (1768905000.5, T + 0.5),
    (1768905000500, T + 0.5),             # epoch milliseconds
    ("1768905000", T),                     # epoch seconds as text
])
def test_accepted(raw: object, expected: float) -> None:
    assert parse_timestamp(raw) == pytest.approx(expected)


@pytest.mark.parametrize(("raw", "words"), [
    ("tomorrow", "expected RFC 3339"),
    ("2026-13-01T00:00:00Z", "expected RFC 3339"),
    ("", "expected RFC 3339"),
    (True, "got True"),
    (None, "got NoneType"),
    ([1], "got list"),
    (float("nan"), "finite"),
    (float("inf"), "finite"),
])
def test_rejected(raw: object, words: str) -> None:
    with pytest.raises(TimestampError, match=words):
        parse_timestamp(raw)


@pytest.mark.parametrize(("ts", "ok"), [
    (T, True), (T + 3600, True), (T + 86_401, False), (946_684_800.0, True), (946_684_799.0, False),
])
def test_plausibility_window(ts: float, ok: bool) -> None:
    if ok:
        check_plausible(ts, T, max_future_s=86_400, min_epoch_s=946_684_800.0)
    else:
        with pytest.raises(TimestampError):
            check_plausible(ts, T, max_future_s=86_400, min_epoch_s=946_684_800.0)


@pytest.mark.parametrize("ts", [T, T + 0.001, T + 0.999, T + 0.9996, 0.0])
def test_format_round_trips_to_the_millisecond(ts: float) -> None:
    assert parse_timestamp(format_rfc3339(ts)) == pytest.approx(round(ts, 3), abs=1e-6)
