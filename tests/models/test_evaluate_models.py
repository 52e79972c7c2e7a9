"""iotwatch evaluate with models: a trained file, a kind per file, and the leaderboard."""

import json

import numpy as np

from iotwatch.cli import main


def _skab(root, files=2, rows=700):
    root.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        rng = np.random.default_rng(f)
        t = np.arange(rows)
        a = 1 + 0.1 * np.sin(t / 15) + rng.normal(0, 0.01, rows)
        b = 20 + rng.normal(0, 0.1, rows)
        anomaly = np.zeros(rows, dtype=int)
        anomaly[500:560] = 1
        a[500:560] += 0.6
        lines = ["datetime;Accelerometer1RMS;Temperature;anomaly;changepoint"] + [
            f"2020-03-09 {10 + i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d};{a[i]:.5f};"
            f"{b[i]:.4f};{anomaly[i]};0" for i in range(rows)]
        (root / f"{f}.csv").write_text("\n".join(lines) + "\n")


def test_a_kind_trained_per_file_and_the_leaderboard(tmp_path, capsys):
    data = tmp_path / "skab" / "valve1"
    _skab(data)
    report = tmp_path / "report.html"
    summary = tmp_path / "s.json"
    assert main(["evaluate", str(tmp_path / "skab"), "--format", "skab", "--model", "kmeans",
                 "--leaderboard", "--quiet", "--json", str(summary), "--report",
                 str(report)]) == 0
    out = capsys.readouterr().out
    board = json.loads(summary.read_text())["leaderboard"]
    names = [r["name"] for r in board]
    assert names[0] == "kmeans" and "iotwatch" in names and "zscore" in names
    assert {"isolation_forest", "one_class_svm", "autoencoder"} <= set(names)
    assert names[-2:] == ["SKAB leaderboard: Conv-AE", "SKAB leaderboard: Isolation Forest"]
    assert all(r["skab_f1"] is not None for r in board)
    assert "contender" in out and "SKAB leaderboard: Conv-AE" in out
    assert "<h2>Leaderboard</h2>" in report.read_text()
    kmeans = board[0]
    assert kmeans["skab_f1"] > 0.3  # the shifted stretch is found


def test_a_trained_file_is_evaluated_on_the_series_it_was_made_for(tmp_path, capsys):
    data = tmp_path / "skab" / "valve1"
    _skab(data, files=1)
    model = tmp_path / "m" / "v.joblib"
    assert main(["train", str(data), "--model", "kmeans", "--device", "./0", "--first-rows",
                 "400", "--out", str(model), "--quiet"]) == 0
    assert main(["evaluate", str(data), "--format", "skab", "--model", str(model),
                 "--quiet"]) == 0
    assert "detector v on 1 skab files" in capsys.readouterr().out
    assert main(["evaluate", str(data), "--model", str(tmp_path / "none.joblib")]) == 2
    assert "none.joblib: model file not found" in capsys.readouterr().err
