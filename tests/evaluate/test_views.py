"""The evaluation's views agree: SKAB's leaderboard rule, alarms = alerts, one term, one unit.

Each test failed on the code before the views were unified (issues 11 and 16).
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import pytest

from detector.engine import Engine, EngineSettings
from detector.evaluate.datasets import load_nab
from iotwatch.cli import main

SHARED_NAB = Path(os.environ.get("IOTWATCH_SHARED", "/work/shared")) / "datasets" / "nab"
README = Path(__file__).resolve().parents[2] / "README.md"


def evaluate(*argv: str | Path) -> int:
    return main(["evaluate", *(str(a) for a in argv)])


def read_rows(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


def rising_edges(flags: list[bool]) -> int:
    return sum(1 for i, f in enumerate(flags) if f and (i == 0 or not flags[i - 1]))


def test_skab_follows_the_leaderboard_rule(skab_dir, tmp_path, capsys):
    """Rows after 400 of the labelled files only; F1, FAR, MAR; flag-every-row beside it."""
    out, summary_path = tmp_path / "out", tmp_path / "s.json"
    assert evaluate(skab_dir, "--out", out, "--json", summary_path, "--quiet") == 0
    printed = capsys.readouterr().out
    summary = json.loads(summary_path.read_text())
    rows = read_rows(out / "iotwatch" / "valve1" / "iotwatch_0.csv")
    test = rows[400:]
    tp = sum(r["anomaly"] == r["label"] == "1" for r in test)
    fp = sum(r["anomaly"] == "1" != r["label"] for r in test)
    fn = sum(r["label"] == "1" != r["anomaly"] for r in test)
    tn = len(test) - tp - fp - fn
    skab = summary["skab"]
    assert (skab["tp"], skab["fp"], skab["fn"], skab["tn"]) == (tp, fp, fn, tn)  # anomaly-free out
    assert skab["files"] == 1
    assert skab["f1"] == pytest.approx(tp / (tp + (fp + fn) / 2))
    assert skab["far"] == pytest.approx(fp / (fp + tn))
    assert skab["mar"] == pytest.approx(fn / (fn + tp))
    reference = summary["baseline_flag_all"]["skab"]
    positives = sum(r["label"] == "1" for r in test)
    assert reference["f1"] == pytest.approx(positives / (positives + (len(test) - positives) / 2))
    assert reference["far"] == 1.0 and reference["mar"] == 0.0
    assert re.search(r"F1 \d\.\d\d, FAR \d+\.\d %, MAR \d+\.\d % \(flagging every row: F1 "
                     r"\d\.\d\d, FAR 100\.0 %, MAR 0\.0 %\)", printed)


def test_the_anomaly_column_is_the_alert_state_a_user_sees(nab_dir, tmp_path):
    """From the reading that fired to the one before the resolve, for every alert."""
    data, labels = nab_dir
    out = tmp_path / "out"
    assert evaluate(data, "--labels", labels, "--out", out, "--quiet") == 0
    series = {s.key: s for s in load_nab(data, labels)}["synthetic/spikes"]
    engine = Engine(EngineSettings())
    expected, firing = [], False
    for ts, value in zip(series.timestamps.tolist(), series.values[:, 0].tolist(), strict=True):
        event = engine.process(series.site, series.device, "value", ts, value).event
        if event is not None:
            firing = event.state == "firing"
        expected.append(firing)
    rows = read_rows(out / "iotwatch" / "synthetic" / "iotwatch_spikes.csv")
    assert [r["anomaly"] == "1" for r in rows] == expected
    assert any(expected)


def test_cli_alarms_json_and_report_count_the_same_thing(nab_dir, tmp_path, capsys):
    """TOTAL alarms = alerts fired = runs of the anomaly column; one term; one delay unit."""
    data, labels = nab_dir
    out, summary_path, report = tmp_path / "out", tmp_path / "s.json", tmp_path / "r.html"
    assert evaluate(data, "--labels", labels, "--out", out, "--json", summary_path,
                    "--report", report, "--quiet") == 0
    printed = capsys.readouterr().out
    summary = json.loads(summary_path.read_text())
    runs = sum(rising_edges([r["anomaly"] == "1" for r in read_rows(path)])
               for path in (out / "iotwatch").rglob("*.csv"))
    total = next(line for line in printed.splitlines() if line.startswith("TOTAL")).split()
    assert int(total[7]) == summary["event"]["alarms"] == runs > 0
    assert re.search(rf"alarms \(true\)\s+{runs} \(", printed)
    assert "alerts" not in summary
    html = report.read_text()
    for text in (printed, html):
        assert "false alerts" not in text and "false alarms per day" in text
    delay = summary["event"]["delay_median"]
    assert re.fullmatch(r"\d+(\.\d)?[smhd]", delay)
    assert total[9] == delay and f"<td>{delay}</td>" in html
    assert "(s)</th>" not in html


def test_no_empty_cell_in_the_report_comparison(nab_dir, tmp_path):
    data, labels = nab_dir
    report = tmp_path / "r.html"
    assert evaluate(data, "--labels", labels, "--report", report, "--quiet") == 0
    table = report.read_text().split("<tbody>")[1].split("</tbody>")[0]
    cells = re.findall(r"<td>(.*?)</td>", table)
    assert cells and all(cell.strip() for cell in cells)
    assert "flag every row</th>" in report.read_text()


def test_nab_per_category_table_with_the_random_reference(nab_dir, tmp_path, capsys):
    data, labels = nab_dir
    summary_path = tmp_path / "s.json"
    assert evaluate(data, "--labels", labels, "--json", summary_path, "--quiet") == 0
    printed = capsys.readouterr().out
    categories = json.loads(summary_path.read_text())["categories"]
    assert set(categories) == {"synthetic", "other"}
    assert categories["synthetic"]["windows"] == 2 and categories["other"]["files"] == 1
    assert set(categories["synthetic"]["random"]) == {"standard", "reward_low_FP_rate",
                                                      "reward_low_FN_rate"}
    assert re.search(r"^synthetic\s+2\s+2\s", printed, re.M)


@pytest.mark.skipif(not (SHARED_NAB / "combined_windows_subset.json").is_file(),
                    reason="shared NAB subset not present")
def test_readme_quotes_the_random_reference_the_tool_prints(tmp_path, capsys):
    assert evaluate(SHARED_NAB, "--labels", SHARED_NAB / "combined_windows_subset.json",
                    "--detector", "random", "--quiet") == 0
    printed = capsys.readouterr().out
    reference = re.search(r"^random baseline: standard ([\d.]+), reward_low_FP_rate ([\d.]+), "
                          r"reward_low_FN_rate ([\d.]+)", printed, re.M)
    assert reference
    row = next(line for line in README.read_text().splitlines()
               if line.startswith("| NAB, 18-file subset"))
    assert "random (seed 42): {} / {} / {}".format(*reference.groups()) in row
