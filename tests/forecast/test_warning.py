"""Early-warning state machine and the per-stream forecasts of the detector service."""

from __future__ import annotations

import orjson

from detector.forecast.model import Point
from detector.forecast.settings import ForecastSettings, WarningRule
from detector.forecast.streams import StreamForecasts
from detector.forecast.warning import WarningMachine


def points(ts: float, *values: float, step: float = 60.0) -> list[Point]:
    return [Point(ts + step * (i + 1), v, v - 1, v + 1) for i, v in enumerate(values)]


def machine(**rule) -> WarningMachine:
    return WarningMachine(WarningRule(match="#", limit=90, within_s=300, **rule), "p", "b", "t")


def test_fires_once_and_resolves_after_forecasts_that_no_longer_cross():
    m = machine(resolve_forecasts=2)
    assert m.forecast(0, 80, points(0, 85, 88, 91)).state == "firing"
    assert m.forecast(60, 81, points(60, 86, 91)) is None          # still crossing: no repeat
    assert m.forecast(120, 80, points(120, 85, 86)) is None        # one quiet forecast
    assert m.forecast(180, 80, points(180, 91)) is None            # crossing again: reset
    assert m.forecast(240, 80, points(240, 85)) is None
    resolved = m.forecast(300, 80, points(300, 85))
    assert resolved.state == "resolved" and "no longer exceeds 90" in \
        resolved.annotations["summary"]
    assert m.state == "normal"


def test_a_crossing_beyond_the_window_does_not_warn():
    m = machine()
    assert m.forecast(0, 80, points(0, 85, 86, 87, 88, 89, 95)) is None   # 360 s > 300 s


def test_the_anomaly_alert_takes_over_and_holds_until_it_ends():
    m = machine()
    m.forecast(0, 80, points(0, 91))
    taken = m.observe(30, 85, anomaly_event="firing")
    assert taken.state == "resolved" and "anomaly alert fired" in taken.annotations["summary"]
    assert m.forecast(60, 85, points(60, 91)) is None               # held: no second warning
    m.observe(90, 85, anomaly_event="resolved")
    assert m.forecast(120, 85, points(120, 91)) is None             # still crossing: held
    for t in (180, 240, 300):                                        # three calm forecasts
        assert m.forecast(t, 85, points(t, 86)) is None
    assert m.forecast(360, 85, points(360, 91)).state == "firing"   # a new episode


def test_a_value_hovering_at_the_limit_is_one_episode():
    m = machine()
    fired = [m.forecast(0, 88, points(0, 91))]
    for t, value in enumerate([90.5, 89.8, 90.2, 89.9, 90.4, 89.7] * 3, start=1):
        fired.append(m.observe(60.0 * t, value, None))
        fired.append(m.forecast(60.0 * t, value, points(60.0 * t, 90.3)))
    states = [a.state for a in fired if a is not None]
    assert states == ["firing", "resolved"]


def test_below_limits_and_the_alert_contract():
    m = WarningMachine(WarningRule(match="#", limit=2.0, direction="below", within_s=600,
                                   severity="critical", rule="low_pressure"), "p", "pump", "bar")
    alert = m.forecast(1000, 3.0, points(1000, 2.5, 1.8))
    assert (alert.state, alert.severity, alert.rule, alert.threshold) == (
        "firing", "critical", "low_pressure", 2.0)
    assert alert.annotations["predicted_crossing"] == "1970-01-01T00:18:40.000Z"
    assert alert.annotations["lead_s"] == "120"
    assert "will fall below 2 within 10 min" in alert.annotations["summary"]
    payload = orjson.loads(alert.to_payload())
    assert payload["labels"]["rule"] == "low_pressure"
    again = m.observe(1100, 1.9, None)
    assert again.state == "resolved" and again.fingerprint == alert.fingerprint


def test_stream_forecasts_checkpoint_round_trip_and_settings_change():
    settings = ForecastSettings(enabled=True, season_s=600, horizon=5, every=3,
                                model={"warmup": 5},
                                warnings=[{"match": "#", "limit": 1e9}])
    first = StreamForecasts(settings)
    feed = [("s", "d", f"m{k}", 10.0 * i, float(i % 60 + k)) for i in range(300) for k in range(2)]
    for row in feed[:400]:
        first.observe(*row)
    restored = StreamForecasts(settings)
    assert restored.restore(first.snapshot()) == 2
    for row in feed[400:]:
        assert restored.observe(*row) == first.observe(*row)
    assert restored.snapshot() == first.snapshot()
    # Another season: the saved model no longer fits, the stream learns afresh.
    other = StreamForecasts(settings.model_copy(update={"season_s": 1200.0}))
    other.restore(first.snapshot())
    assert other.observe("s", "d", "m0", 3000.0, 1.0) == ([], [])
    assert not other.summaries()["s/d/m0"]["ready"]


def test_streams_not_matched_are_not_forecast():
    forecasts = StreamForecasts(ForecastSettings(streams=[{"match": "+/+/temp", "enabled": True}]))
    assert forecasts.active
    forecasts.observe("s", "d", "power", 0.0, 1.0)
    forecasts.observe("s", "d", "temp", 0.0, 1.0)
    assert list(forecasts.summaries()) == ["s/d/temp"]
    assert not StreamForecasts(ForecastSettings()).active


def test_a_warning_rule_forecasts_the_streams_it_watches():
    forecasts = StreamForecasts(ForecastSettings(warnings=[{"match": "+/+/temp", "limit": 9}]))
    assert forecasts.active
    forecasts.observe("s", "d", "temp", 0.0, 1.0)
    forecasts.observe("s", "d", "power", 0.0, 1.0)
    assert list(forecasts.summaries()) == ["s/d/temp"]

