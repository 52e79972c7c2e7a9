"""``iotwatch evaluate``'s forecast part: accuracy against the seasonal-naive baseline."""

from __future__ import annotations

import json

import pytest

from iotwatch.cli import main

EIGHT_HOURS = 8 * 3600  # the generated NAB files' cycle: 96 rows of 5 minutes


def evaluate(*argv) -> int:
    return main(["evaluate", *(str(a) for a in argv)])


def test_forecast_summary_in_the_json_beats_seasonal_naive(nab_dir, tmp_path, capsys):
    data, labels = nab_dir
    out = tmp_path / "summary.json"
    assert evaluate(data, "--labels", labels, "--json", out, "--quiet", "--horizon", 6,
                    "--season-s", EIGHT_HOURS) == 0
    forecast = json.loads(out.read_text())["forecast"]
    assert forecast["horizon"] == 6 and forecast["interval"] == 0.9
    assert forecast["season_s"] == EIGHT_HOURS
    assert forecast["points"] > 500
    assert [s["h"] for s in forecast["by_step"]] == [1, 2, 3, 4, 5, 6]
    # Bursts come back a season later in the naive forecast; the clipped model ignores them.
    assert forecast["mae"] < forecast["baseline_mae"]
    assert 0.7 <= forecast["coverage"] <= 1.0
    assert set(forecast["files"]) == {"synthetic/spikes.csv", "synthetic/quiet.csv",
                                      "other/repeat.csv"}
    assert forecast["us_per_reading"] > 0 and forecast["state_bytes_per_stream"] > 0
    assert "forecast h=1..6" in capsys.readouterr().out


def test_a_season_longer_than_the_recording_scores_nothing_and_says_why(nab_dir, tmp_path,
                                                                       capsys):
    data, labels = nab_dir
    out = tmp_path / "summary.json"
    assert evaluate(data, "--labels", labels, "--json", out, "--quiet",
                    "--season-s", 7 * 86400) == 0
    assert json.loads(out.read_text())["forecast"]["points"] == 0
    assert "needs a whole season of readings first" in capsys.readouterr().out


def test_skab_metrics_are_forecast_without_a_season(skab_dir, tmp_path):
    out = tmp_path / "summary.json"
    assert evaluate(skab_dir, "--json", out, "--quiet", "--season-s", 0) == 0
    forecast = json.loads(out.read_text())["forecast"]
    assert forecast["season_s"] is None and forecast["points"] > 0
    assert forecast["mae"] is not None and forecast["baseline_mae"] is not None


def test_publisher_recording_is_forecast_per_stream(iotwatch_dir, tmp_path):
    out = tmp_path / "summary.json"
    assert evaluate(iotwatch_dir, "--json", out, "--quiet", "--season-s", 0) == 0
    assert json.loads(out.read_text())["forecast"]["points"] > 0


def test_no_forecast_leaves_it_out(nab_dir, tmp_path):
    data, labels = nab_dir
    out = tmp_path / "summary.json"
    assert evaluate(data, "--labels", labels, "--json", out, "--quiet", "--no-forecast") == 0
    assert "forecast" not in json.loads(out.read_text())


@pytest.mark.parametrize(("extra", "message"), [
    (["--horizon", "0"], "--horizon must be >= 1, got 0"),
    (["--season-s", "-5"], "--season-s must be >= 0, got -5.0"),
])
def test_bad_forecast_arguments_give_one_line(nab_dir, extra, message, capsys):
    data, labels = nab_dir
    assert evaluate(data, "--labels", labels, "--quiet", *extra) == 2
    assert capsys.readouterr().err.strip() == f"iotwatch evaluate: error: {message}"
