"""iotwatch train --format influxdb against a real InfluxDB 1.x (the harness's)."""

import json

import numpy as np

from iotwatch.cli import main

BASE_NS = 1_768_905_000 * 10**9


def _points(rows: int = 600) -> list[str]:
    rng = np.random.default_rng(0)
    lines = []
    for i in range(rows):
        ts = BASE_NS + i * 10 * 10**9
        for metric, level in (("temp", 20.0), ("pressure", 3.0)):
            value = level + np.sin(i / 30) + rng.normal(0, 0.05)
            anomaly = 1 if metric == "temp" and 300 <= i < 310 else 0  # flagged: not trained on
            if anomaly:
                value += 50
            lines.append(f"readings,site=plant,device=pump,metric={metric} value={value:.5f},"
                         f"anomaly={anomaly}i {ts}")
        lines.append(f"readings,site=other,device=fan,metric=temp value=99.0,anomaly=0i {ts}")
    return lines


def test_train_on_a_time_range_of_influxdb_points(influxdb, tmp_path, capsys):
    database = influxdb.create_database()
    influxdb.write(_points(), db=database)
    out = tmp_path / "pump.joblib"
    argv = ["train", influxdb.url, "--format", "influxdb", "--database", database,
            "--start", "2026-01-20T10:30:00Z", "--end", "2026-01-20T11:50:00Z",
            "--model", "kmeans", "--quiet"]
    assert main([*argv, "--device", "plant/pump", "--out", str(out)]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["scope"] == "device" and meta["metrics"] == ["pressure", "temp"]
    # 80 minutes at one point per 10 s: rows 0..479; the flagged temp points 300..309 are
    # left out, their pressure rows are kept with temp carried forward
    assert meta["training"]["rows"] == 480
    assert meta["training"]["start"] == 1_768_905_000.0
    assert meta["training"]["end"] == 1_768_905_000.0 + 479 * 10
    assert meta["training"]["source"].startswith(f"influxdb:{influxdb.url}/{database}")

    stream = tmp_path / "temp.joblib"
    assert main([*argv, "--stream", "plant/+/temp", "--out", str(stream)]) == 0
    meta = json.loads(stream.with_suffix(".json").read_text())
    assert meta["scope"] == "stream" and meta["training"]["rows"] == 470  # 480 - 10 flagged

    assert main([*argv, "--stream", "nowhere/+/temp", "--out", str(stream)]) == 2
    assert "no points of streams 'nowhere/+/temp'" in capsys.readouterr().err
    assert main([*argv[:1], "http://127.0.0.1:9", *argv[2:], "--stream", "plant/+/temp",
                 "--out", str(stream)]) == 2
    assert "query failed" in capsys.readouterr().err
