"""iotwatch tune: splits never share a file's rows; trials append and resume."""

import csv

import numpy as np
import pytest

from detector.evaluate.datasets import Series, Span
from detector.models import tune
from iotwatch.cli import main


def _series(name: str, rows: int = 400) -> Series:
    rng = np.random.default_rng(len(name))
    values = rng.normal(10, 1, rows)
    values[300:305] += 15
    return Series("cat", name, "cat", name, ("value",), np.arange(rows) * 60.0 + 1.7e9,
                  values[:, None], (Span(295, 320),), 40, source=f"cat/{name}.csv",
                  columns=("value",))


@pytest.mark.parametrize("holdout", [0.2, 0.3, 0.5])
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_file_split_never_puts_one_files_rows_on_both_sides(holdout, seed):
    series = [_series(f"f{i}") for i in range(7)]
    search, held = tune.split(series, "files", holdout, seed)
    assert search and held
    assert {s.source for s in search}.isdisjoint({s.source for s in held})
    assert sorted(s.key for s in search + held) == sorted(s.key for s in series)
    by_source = {s.source: s for s in series}
    for part in search + held:  # each side holds whole files, every row of them
        assert part.rows == by_source[part.source].rows


def test_time_split_keeps_row_order_and_cuts_spans():
    (head,), (tail,) = tune.split([_series("a")], "time", 0.25, 0)
    assert head.rows == 300 and tail.rows == 100
    assert head.timestamps[-1] < tail.timestamps[0]
    assert head.spans == (Span(295, 299),) and tail.spans == (Span(0, 20),)


def _write_nab(root):
    for i in range(4):
        s = _series(f"f{i}", 600)
        path = root / "cat" / f"f{i}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["timestamp,value"] + [
            f"2026-01-01 {int(t // 3600) % 24:02d}:{int(t // 60) % 60:02d}:00,{v:.4f}"
            for t, v in zip(np.arange(600) * 60.0, s.values[:, 0], strict=True)]
        path.write_text("\n".join(lines) + "\n")
    (root / "combined_windows.json").write_text(
        '{' + ",".join(f'"cat/f{i}.csv": [["2026-01-01 04:55:00", "2026-01-01 05:20:00"]]'
                       for i in range(4)) + '}')


def test_tune_writes_trials_and_best_and_resumes(tmp_path, capsys):
    data, out = tmp_path / "nab", tmp_path / "out"
    _write_nab(data)
    space = tmp_path / "space.yaml"
    space.write_text("halflife: [20, 200]\n")
    argv = ["tune", str(data), "--format", "nab", "--detector", "ewm_zscore", "--space",
            str(space), "--split", "files", "--out", str(out)]
    assert main(argv) == 0
    with (out / "trials.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["objective"] for r in rows] == ["nab_standard", "nab_standard"]
    best = (out / "best.yaml").read_text()
    assert "ewm_zscore:" in best and "halflife:" in best
    assert "held out" in capsys.readouterr().out
    assert main(argv) == 0  # everything is in trials.csv already: nothing re-run
    with (out / "trials.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 2
    assert "resuming: 2 trials" in capsys.readouterr().err


def test_bad_space_key_is_refused(tmp_path, capsys):
    data = tmp_path / "nab"
    _write_nab(data)
    space = tmp_path / "space.yaml"
    space.write_text("half_life: [20]\n")
    assert main(["tune", str(data), "--detector", "ewm_zscore", "--space", str(space),
                 "--out", str(tmp_path / "o")]) == 2
    assert "space.half_life: no such setting" in capsys.readouterr().err
