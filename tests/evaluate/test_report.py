"""The HTML report: one plot per file, capped for corpora of many streams."""

from __future__ import annotations

import numpy as np

from detector.evaluate import report, summary
from detector.evaluate.datasets import Series, Span
from detector.evaluate.runner import Scored


def tiny_corpus(files: int) -> tuple[list[Series], list[Scored]]:
    series, scored = [], []
    for i in range(files):
        spans = (Span(40, 49),) if i == 2 else ()
        s = Series("site", f"dev{i}.temp", "site", f"dev{i}", ("temp",),
                   np.arange(60) * 10.0, np.sin(np.arange(60.0)).reshape(-1, 1), spans,
                   warmup_rows=9, columns=("temp",))
        flags = np.zeros(60, dtype=bool)
        if i == 3:
            flags[20] = True                              # one false alarm
        series.append(s)
        scored.append(Scored(s.key, flags * 0.9, flags, np.full(60, 0.5)))
    return series, scored


def test_many_files_plot_the_informative_ones_first(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "MAX_PLOTS", 2)
    series, scored = tiny_corpus(5)
    result = summary.evaluate_scored(series, scored)
    data = summary.build_summary(detector="x", fmt="iotwatch", data_dir="d", labels=None,
                                 seed=1, series=series, scored=scored, result=result,
                                 baseline=None, results_dir=None)
    path = report.write_report(tmp_path / "r.html", data, series, scored)
    pngs = sorted(p.name for p in (tmp_path / "r_files").glob("*.png"))
    assert pngs == ["site__dev2.temp.png", "site__dev3.temp.png"]
    html = path.read_text()
    assert "2 of 5 files plotted" in html and "site/dev0.temp" in html   # still in the table
