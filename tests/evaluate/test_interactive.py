"""The report's zoomable plots: a Plotly page beside the PNGs, offline, linked both ways."""

from __future__ import annotations

import base64
import json
import re

import numpy as np

from detector.evaluate import interactive, report, summary
from detector.evaluate.datasets import Series, Span
from detector.evaluate.runner import Scored


def corpus() -> tuple[list[Series], list[Scored]]:
    series, scored = [], []
    for i in range(2):
        s = Series("site", f"dev{i}.temp", "site", f"dev{i}", ("temp",),
                   1_700_000_000 + np.arange(80) * 10.0, np.sin(np.arange(80.0)).reshape(-1, 1),
                   (Span(50, 59),), warmup_rows=9, columns=("temp",))
        flags = np.zeros(80, dtype=bool)
        flags[52:55] = True
        series.append(s)
        scored.append(Scored(s.key, flags * 0.9, flags, np.full(80, 0.65),
                             alerts=[(52, 60, "temp")], alerting=True))
    return series, scored


def test_the_report_keeps_its_pngs_and_links_a_zoomable_page(tmp_path):
    series, scored = corpus()
    result = summary.evaluate_scored(series, scored)
    data = summary.build_summary(detector="x", fmt="iotwatch", data_dir="d", labels=None,
                                 seed=1, series=series, scored=scored, result=result,
                                 baseline=None, results_dir=None)
    path = report.write_report(tmp_path / "r.html", data, series, scored)

    assert len(list((tmp_path / "r_files").glob("*.png"))) == 2
    assert "<a href='r_interactive.html'>" in path.read_text()
    page = (tmp_path / "r_interactive.html").read_text()
    assert '<a href="r.html">' in page
    # plotly.js from the report's own directory: no network needed to open it.
    assert '<script src="r_files/plotly.min.js"></script>' in page
    assert (tmp_path / "r_files" / "plotly.min.js").stat().st_size > 1_000_000
    assert "cdn.plot.ly" not in page
    figures = [json.loads(m) for m in re.findall(r"Plotly\.newPlot\(\s*\"[^\"]+\",\s*(\[.*?\]),"
                                                 r"\s*\{", page, re.S)]
    assert len(figures) == 2
    names = [trace["name"] for trace in figures[0]]
    assert names == ["temp", "flagged (3)", "anomaly score", "detector threshold"]
    assert _array(figures[0][2]["y"])[52] == np.float32(0.9)
    # Warm-up and labelled window shaded on both rows (Plotly drops shapes added to a
    # subplot before its data), the alert and the NAB threshold as lines.
    layout = json.loads(re.search(r"Plotly\.newPlot\(\s*\"[^\"]+\",\s*\[.*?\],\s*(\{.*?\}),"
                                  r"\s*\{\"displaylogo", page, re.S)[1])
    kinds = sorted((shape["type"], shape.get("fillcolor", "")) for shape in layout["shapes"])
    assert kinds == [("line", ""), ("line", ""), ("rect", "lightgrey"), ("rect", "lightgrey"),
                     ("rect", "orange"), ("rect", "orange")]     # lines: the alert, NAB


def _array(encoded) -> np.ndarray:
    """A trace's data: a list, or Plotly's typed-array form ``{"dtype", "bdata"}``."""
    if isinstance(encoded, dict):
        return np.frombuffer(base64.b64decode(encoded["bdata"]), dtype=encoded["dtype"])
    return np.asarray(encoded)


def test_a_long_series_is_drawn_with_webgl():
    rows = interactive.WEBGL_ROWS + 1
    s = Series("c", "long", "c", "long", ("v",), np.arange(rows) * 1.0,
               np.zeros((rows, 1)), (), warmup_rows=0, columns=("v",))
    sc = Scored(s.key, np.zeros(rows), np.zeros(rows, dtype=bool), np.full(rows, np.nan))
    entry = {"point": {"f1": None}, "event": {"detected": 0, "windows": 0, "false_alarms": 0},
             "nab_raw": {"standard": 0.0}}
    figure = interactive.file_figure(s, sc, entry, "x", None)
    assert {trace.type for trace in figure.data} == {"scattergl"}
