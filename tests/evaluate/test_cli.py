"""``iotwatch evaluate`` end to end on small generated data sets, through the real engine."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from iotwatch.cli import main

SHARED_NAB = Path(os.environ.get("IOTWATCH_SHARED", "/work/shared")) / "datasets" / "nab"


def evaluate(*argv: str | Path) -> int:
    return main(["evaluate", *(str(a) for a in argv)])


def read_rows(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


def test_nab_results_layout_json_and_report(nab_dir, tmp_path, capsys):
    data, labels = nab_dir
    out, summary_path, report = tmp_path / "out", tmp_path / "s.json", tmp_path / "r" / "r.html"
    code = evaluate(data, "--labels", labels, "--detector", "zscore", "--out", out,
                    "--json", summary_path, "--report", report, "--jobs", "2", "--seed", "3")
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "NAB score: standard" in printed.out and "random baseline" in printed.out
    assert "3/3 files" in printed.err and "done in" in printed.err       # progress on stderr

    # NAB's results layout, same rows and order as the input, label 1 inside windows.
    results = out / "zscore" / "synthetic" / "zscore_spikes.csv"
    rows = read_rows(results)
    source = read_rows(data / "synthetic" / "spikes.csv")
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score", "label", "anomaly"]
    assert [r["timestamp"] for r in rows] == [r["timestamp"] for r in source]
    assert [float(r["value"]) for r in rows] == pytest.approx([float(r["value"]) for r in source])
    assert [i for i, r in enumerate(rows) if r["label"] == "1"] == [
        *range(290, 310), *range(440, 460)]
    assert all(0.0 <= float(r["anomaly_score"]) <= 1.0 for r in rows)
    repeat = read_rows(out / "zscore" / "other" / "zscore_repeat.csv")
    assert [r["timestamp"] for r in repeat] == [
        r["timestamp"] for r in read_rows(data / "other" / "repeat.csv")]

    summary = json.loads(summary_path.read_text())
    assert set(summary["nab"]) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    for key in ("precision", "recall", "f1", "files", "us_per_reading", "event",
                "baseline_random", "baseline_random_seeds"):
        assert key in summary, key
    assert summary["detector"] == "zscore" and summary["seed"] == 3
    assert set(summary["files"]) == {"synthetic/spikes.csv", "synthetic/quiet.csv",
                                     "other/repeat.csv"}
    spikes = summary["files"]["synthetic/spikes.csv"]
    assert spikes["event"]["windows"] == 2 and spikes["rows"] == 600
    assert spikes["scored_from_row"] == 90                          # NAB probation
    # The metrics are those of the written results (flags vs labels after probation).
    scored = rows[90:]
    assert spikes["point"]["tp"] == sum(r["anomaly"] == r["label"] == "1" for r in scored)
    assert spikes["point"]["fp"] == sum(r["anomaly"] == "1" != r["label"] for r in scored)
    assert spikes["point"]["fn"] == sum(r["label"] == "1" != r["anomaly"] for r in scored)
    assert summary["us_per_reading"] > 0

    html = report.read_text()
    assert "synthetic/spikes.csv" in html and "random baseline" in html
    images = sorted((report.parent / "r_files").glob("*.png"))
    assert len(images) == 3 and all(p.stat().st_size > 10_000 for p in images)


def test_parallel_run_equals_serial_run(nab_dir, tmp_path):
    data, labels = nab_dir
    for jobs in ("1", "2"):
        assert evaluate(data, "--labels", labels, "--detector", "hst", "--out",
                        tmp_path / jobs, "--jobs", jobs, "--quiet") == 0
    for name in ("synthetic/hst_spikes.csv", "other/hst_repeat.csv"):
        assert (tmp_path / "1" / "hst" / name).read_text() == \
            (tmp_path / "2" / "hst" / name).read_text()


def test_scores_are_strictly_online(nab_dir, tmp_path):
    """Cutting a file short does not change the scores of the rows before the cut."""
    data, labels = nab_dir
    assert evaluate(data, "--labels", labels, "--out", tmp_path / "full", "--quiet") == 0
    path = data / "synthetic" / "spikes.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:401]) + "\n")             # header + 400 rows
    assert evaluate(data, "--labels", labels, "--out", tmp_path / "cut", "--quiet") == 0
    full = read_rows(tmp_path / "full" / "iotwatch" / "synthetic" / "iotwatch_spikes.csv")
    cut = read_rows(tmp_path / "cut" / "iotwatch" / "synthetic" / "iotwatch_spikes.csv")
    assert len(cut) == 400
    assert [r["anomaly_score"] for r in cut] == [r["anomaly_score"] for r in full[:400]]


def test_skab_scores_streams_and_the_device_detector(skab_dir, tmp_path, capsys):
    summary_path = tmp_path / "skab.json"
    assert evaluate(skab_dir, "--out", tmp_path / "out", "--json", summary_path,
                    "--quiet") == 0
    assert "format skab" not in capsys.readouterr().err
    summary = json.loads(summary_path.read_text())
    assert summary["format"] == "skab" and summary["detector"] == "iotwatch"
    assert set(summary["components"]) == {"streams", "device"}
    assert summary["files"]["valve1/0.csv"]["scored_from_row"] == 400
    assert summary["readings"] == (700 + 450) * 4
    rows = read_rows(tmp_path / "out" / "iotwatch" / "valve1" / "iotwatch_0.csv")
    assert len(rows) == 700 and list(rows[0])[-1] == "trigger"
    assert {r["label"] for r in rows[500:580]} == {"1"}
    assert {r["trigger"] for r in rows} <= {
        "Accelerometer1RMS", "Current", "Pressure", "Volume_Flow_RateRMS", "device"}


def test_publisher_recording_is_evaluated_per_stream(iotwatch_dir, tmp_path):
    summary_path = tmp_path / "s.json"
    assert evaluate(iotwatch_dir, "--detector", "zscore", "--out", tmp_path / "out",
                    "--json", summary_path, "--quiet") == 0
    temperature = read_rows(tmp_path / "out" / "zscore" / "plant-1" /
                            "zscore_boiler-1.temperature.csv")
    assert len(temperature) == 500
    assert [i for i, r in enumerate(temperature) if r["label"] == "1"] == list(range(350, 360))
    summary = json.loads(summary_path.read_text())
    assert set(summary["event"]["recall_by_kind"]) == {"spike"}
    assert summary["files"]["readings.csv#plant-1/boiler-1/temperature"]["event"]["windows"] == 1


def test_random_baseline_is_seeded(nab_dir, tmp_path):
    data, labels = nab_dir
    runs = {}
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        path = tmp_path / f"{name}.json"
        assert evaluate(data, "--labels", labels, "--detector", "random", "--seed", seed,
                        "--json", path, "--quiet") == 0
        runs[name] = json.loads(path.read_text())["files"]["synthetic/spikes.csv"]["nab_raw"]
    assert runs["a"] == runs["b"] != runs["c"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--detector", "nope"], "--detector 'nope' is not a registered detector (known: "),
    (["--labels", "missing.json"], "--labels missing.json: file not found"),
    (["--jobs", "0"], "--jobs must be >= 1"),
    (["--config", "missing.yaml"], "--config missing.yaml: file not found"),
])
def test_bad_arguments_give_clear_errors(nab_dir, extra, message, capsys, monkeypatch):
    data, labels = nab_dir
    monkeypatch.chdir(data.parent)
    args = ["--labels", labels, *extra] if "--labels" not in extra else extra
    assert evaluate(data, *args, "--quiet") == 2
    err = capsys.readouterr().err
    assert f"iotwatch evaluate: error: {message}" in err
    if "nope" in extra:
        assert "zscore" in err and "random" in err


@pytest.mark.parametrize(("option", "target", "message"), [
    ("--out", "/proc/iotwatch-x", "--out /proc/iotwatch-x: cannot write there"),
    ("--json", "notadir/x.json", "--json notadir/x.json: notadir is a file; expected a directory"),
    ("--report", "notadir/r.html", "--report notadir/r.html: notadir is a file"),
    ("--json", ".", "--json .: is a directory; expected a file name"),
])
def test_unwritable_outputs_fail_in_one_line_before_any_scoring(nab_dir, tmp_path, monkeypatch,
                                                                capsys, option, target, message):
    data, labels = nab_dir
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notadir").write_text("a file")
    assert evaluate(data, "--labels", labels, "--detector", "zscore", option, target) == 2
    captured = capsys.readouterr()
    [line] = captured.err.strip().splitlines()
    assert line.startswith(f"iotwatch evaluate: error: {message}")
    assert captured.out == ""  # nothing was scored: no table, no progress


def test_unknown_detector_lists_each_name_once(nab_dir, capsys):
    data, labels = nab_dir
    assert evaluate(data, "--labels", labels, "--detector", "nope", "--quiet") == 2
    known = capsys.readouterr().err.split("(known: ")[1].split(")")[0].split(", ")
    assert len(known) == len(set(known)) and "random" in known


def test_nab_without_labels_says_so(nab_dir, capsys):
    data, _ = nab_dir
    assert evaluate(data, "--quiet") == 2
    assert "NAB data needs a labels file; pass --labels FILE" in capsys.readouterr().err


def test_config_file_configures_the_engine(nab_dir, tmp_path):
    data, labels = nab_dir
    config = tmp_path / "detector.yaml"
    config.write_text("detector:\n  enabled: [zscore]\n  decision:\n    threshold: 0.99\n")
    summary_path = tmp_path / "s.json"
    assert evaluate(data, "--labels", labels, "--config", config, "--json", summary_path,
                    "--out", tmp_path / "out", "--quiet") == 0
    rows = read_rows(tmp_path / "out" / "iotwatch" / "synthetic" / "iotwatch_spikes.csv")
    flagged = [float(r["anomaly_score"]) for r in rows if r["anomaly"] == "1"]
    assert all(score >= 0.99 for score in flagged)


def test_bad_config_names_the_key(nab_dir, tmp_path, capsys):
    data, labels = nab_dir
    config = tmp_path / "detector.yaml"
    config.write_text("detector:\n  enabled: [zscore]\n  decision:\n    threshold: 7\n")
    assert evaluate(data, "--labels", labels, "--config", config, "--quiet") == 2
    assert "detector.decision.threshold: must be <= 1" in capsys.readouterr().err


@pytest.mark.skipif(not (SHARED_NAB / "combined_windows_subset.json").is_file(),
                    reason="shared NAB subset not present")
def test_random_baseline_reproduces_nabs_reference_on_the_shared_subset(tmp_path):
    """NAB's random detector (same seed 42 for every file) scores about 28 on the subset."""
    summary_path = tmp_path / "random.json"
    assert evaluate(SHARED_NAB, "--labels", SHARED_NAB / "combined_windows_subset.json",
                    "--detector", "random", "--seed", "42", "--json", summary_path,
                    "--quiet") == 0
    nab = json.loads(summary_path.read_text())["nab"]
    assert nab["standard"] == pytest.approx(27.75, abs=0.01)


def test_engine_decisions_flow_into_the_metrics(nab_dir, tmp_path):
    """With threshold 0 the engine flags every row, so the metrics are those of flagging all."""
    data, labels = nab_dir
    config = tmp_path / "detector.yaml"
    config.write_text("detector:\n  enabled: [ewm_zscore]\n  decision:\n    threshold: 0.0\n")
    summary_path = tmp_path / "s.json"
    assert evaluate(data, "--labels", labels, "--config", config, "--json", summary_path,
                    "--quiet") == 0
    summary = json.loads(summary_path.read_text())
    assert summary["recall"] == 1.0
    assert summary["precision"] == summary["baseline_flag_all"]["precision"]
    assert summary["event"]["detected"] == summary["event"]["windows"] == 3
    assert summary["event"]["alarms"] >= 1
