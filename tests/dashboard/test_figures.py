"""The page's figures and tables from frames and API answers (pure functions)."""

from __future__ import annotations

import pandas as pd

from iotwatch.dashboard import figures
from iotwatch.dashboard.services import ServiceStatus


def _readings(streams: int) -> pd.DataFrame:
    rows = []
    for s in range(streams):
        for i in range(10):
            rows.append({"time": pd.Timestamp(i * 1000, unit="ms", tz="UTC"), "site": "s",
                         "device": f"d{s:02d}", "metric": "m", "value": float(i),
                         "score": 0.9 if i == 5 else 0.1, "threshold": 0.65,
                         "anomaly": int(i == 5)})
    return pd.DataFrame(rows)


def test_a_forecast_band_is_drawn_behind_its_stream_only():
    readings = _readings(2)
    bands = pd.DataFrame({"time": readings["time"][:10], "site": "s", "device": "d01",
                          "metric": "m", "lower": 0.0, "upper": 10.0, "forecast": 5.0})
    figure = figures.stream_figure(readings, figures.empty_alerts(), bands=bands, revision="r")
    filled = [t for t in figure.data if t.fill == "tonexty"]
    assert len(filled) == 1 and filled[0].name == "forecast band"
    # Row 2 (device d01) carries it: its traces use the second row's axes.
    assert filled[0].xaxis == "x2"


def test_at_most_twelve_streams_are_drawn_and_alerts_become_lines():
    readings = _readings(15)
    alerts = pd.DataFrame({"time": [pd.Timestamp(5000, unit="ms", tz="UTC")], "site": ["s"],
                           "device": ["d00"], "metric": ["m"], "state": ["firing"],
                           "severity": ["critical"], "value": [5.0], "score": [0.9],
                           "text": ["t"], "fingerprint": ["f"]})
    figure = figures.stream_figure(readings, alerts, revision="r")
    titles = [a.text for a in figure.layout.annotations if a.text.startswith("s/")]
    assert titles == [f"s/d{s:02d}/m" for s in range(figures.MAX_STREAM_PLOTS)]
    assert len(figure.layout.shapes) == 1
    assert figures.history_rows(alerts)[0]["stream"] == "s/d00/m"


def test_firing_falls_back_to_the_alert_history_when_the_detector_is_down():
    times = pd.to_datetime([1000, 2000, 3000], unit="ms", utc=True)
    alerts = pd.DataFrame({"time": times, "site": "s", "device": ["a", "b", "a"],
                           "metric": "m", "state": ["firing", "firing", "resolved"],
                           "severity": "critical", "value": 1.0, "score": 0.9, "text": "t",
                           "fingerprint": ["fa", "fb", "fa"]})
    rows = figures.firing_rows(None, alerts, None)
    assert [r["stream"] for r in rows] == ["s/b/m"]
    assert rows[0]["since"] == "1970-01-01 00:00:02"


def test_dead_letters_are_the_rejected_counters_by_reason():
    detector = ServiceStatus("detector", "u", counters={
        ("iotwatch_detector_rejected_total", (("reason", "bad_json"),)): 2.0,
        ("iotwatch_detector_rejected_total", (("reason", "too_large"),)): 0.0,
        ("iotwatch_detector_readings_total", ()): 50.0})
    assert figures.dead_letter_rows([detector]) == [
        {"service": "detector", "reason": "bad_json", "count": 2}]


def test_throughput_is_the_rate_of_the_stored_counters():
    stats = pd.DataFrame({"time": pd.to_datetime([0, 2000, 4000], unit="ms", utc=True),
                          "service": "detector", "readings_in": [0, 100, 300],
                          "points_written": [0, 100, 300], "rejected": [0, 0, 2]})
    figure = figures.throughput_figure(stats)
    readings_in = next(t for t in figure.data if t.name == "detector: readings in/s")
    assert list(readings_in.y)[1:] == [50.0, 100.0]
