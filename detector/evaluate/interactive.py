"""The report's plots, zoomable: one Plotly page beside the static report.

``<report stem>_interactive.html`` draws what each PNG draws (the series, labelled windows,
the unscored warm-up, flagged rows, alerts; below, the score with the detector's and the
NAB thresholds), with zoom, pan and hover. plotly.js is written once to the report's
``_files/`` directory, so the page works offline; the PNGs stay for e-mail and print.

>>> zoomable_link("r_interactive.html")
"<p class='note'>Zoomable versions of these plots: <a href='r_interactive.html'>r_interactive.html</a>.</p>"
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from detector.evaluate.datasets import Series
from detector.evaluate.runner import Scored

# Above this many rows a trace is drawn with WebGL (SVG gets slow to zoom).
WEBGL_ROWS = 5000
PLOTLY_JS = "plotly.min.js"


def write_interactive(report: Path, plots: Sequence[tuple[Any, ...]]) -> Path:
    """Write the zoomable page for the report at ``report``; return its path.

    ``plots`` are the report's plot tasks: ``(image, series, scored, entry, detector,
    nab_threshold)``, the same arguments that draw each PNG.
    """
    files_dir = report.parent / f"{report.stem}_files"
    files_dir.mkdir(parents=True, exist_ok=True)
    (files_dir / PLOTLY_JS).write_text(get_plotlyjs(), encoding="utf-8")
    sections = []
    for _image, series, scored, entry, detector, nab_threshold in plots:
        name = series.source or series.key
        figure = file_figure(series, scored, entry, detector, nab_threshold)
        sections.append(f"<h3 id='{html.escape(name)}'>{html.escape(name)}</h3>\n"
                        + figure.to_html(full_html=False, include_plotlyjs=False,
                                         config={"displaylogo": False, "responsive": True}))
    path = report.with_name(f"{report.stem}_interactive.html")
    script = f"{files_dir.name}/{PLOTLY_JS}"
    path.write_text(f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(report.stem)}: zoomable plots</title>
<script src="{html.escape(script)}"></script>
<style>body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}</style>
</head><body>
<h1>Zoomable plots</h1>
<p>Drag to zoom, double-click to reset, hover to read values. Orange: labelled windows;
grey: warm-up (not scored); red lines: alerts fired. The static report:
<a href="{html.escape(report.name)}">{html.escape(report.name)}</a>.</p>
{''.join(sections)}
</body></html>
""", encoding="utf-8")
    return path


def zoomable_link(name: str) -> str:
    """The line the static report carries to the zoomable page."""
    return (f"<p class='note'>Zoomable versions of these plots: "
            f"<a href='{html.escape(name)}'>{html.escape(name)}</a>.</p>")


def file_figure(series: Series, scored: Scored, entry: dict, detector: str,
                nab_threshold: float | None) -> go.Figure:
    """One file: the series above, the score below, sharing a zoomable time axis."""
    from detector.evaluate.report import _display_values, _title

    # Epoch milliseconds on a date axis: a quarter of the bytes of date strings per point.
    times = series.timestamps * 1000.0
    scatter = go.Scattergl if series.rows > WEBGL_ROWS else go.Scatter
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.68, 0.32],
                           vertical_spacing=0.04)
    values = _display_values(series)
    flagged = np.flatnonzero(scored.flags)
    for j, column in enumerate(series.columns or series.metrics):
        figure.add_trace(scatter(x=times, y=values[:, j].astype(np.float32), mode="lines",
                                 name=column, line={"width": 1}), row=1, col=1)
    marks = values[flagged, 0] if values.shape[1] == 1 else \
        np.full(flagged.size, np.nanmax(values) * 1.02)
    figure.add_trace(scatter(x=times[flagged], y=marks, mode="markers",
                             marker={"color": "red", "size": 5},
                             name=f"flagged ({flagged.size})"), row=1, col=1)
    figure.add_trace(scatter(x=times, y=scored.scores.astype(np.float32), mode="lines",
                             name="anomaly score",
                             line={"color": "purple", "width": 1}), row=2, col=1)
    if np.isfinite(scored.thresholds).any():
        figure.add_trace(scatter(x=times, y=scored.thresholds, mode="lines",
                                 name="detector threshold",
                                 line={"color": "red", "dash": "dash", "width": 1}),
                         row=2, col=1)
    # Shapes after the traces: Plotly leaves out a shape on a subplot with no data yet.
    for row in (1, 2):
        if series.warmup_rows > 0:
            figure.add_vrect(x0=times[0], x1=times[min(series.warmup_rows, series.rows - 1)],
                             fillcolor="lightgrey", opacity=0.5, line_width=0, layer="below",
                             row=row, col=1)
        for span in series.spans:
            figure.add_vrect(x0=times[span.first], x1=times[span.last], fillcolor="orange",
                             opacity=0.25, line_width=0, layer="below", row=row, col=1)
    for fired in sorted({a for a, _, _ in scored.alerts}):
        figure.add_vline(x=times[fired], line_color="red", line_width=1, opacity=0.7,
                         row=1, col=1)
    if nab_threshold is not None and 0 <= nab_threshold <= 1:
        figure.add_hline(y=nab_threshold, line_dash="dot", line_color="green", row=2, col=1,
                         annotation_text=f"NAB threshold {nab_threshold:.3f}")
    figure.update_xaxes(type="date")
    figure.update_yaxes(range=[-0.03, 1.05], title_text="score", row=2, col=1)
    figure.update_yaxes(title_text=series.columns[0] if values.shape[1] == 1 and series.columns
                        else "standardised value", row=1, col=1)
    figure.update_layout(title={"text": _title(series, entry, detector), "font": {"size": 13}},
                         height=520, template="plotly_white", hovermode="x unified",
                         margin={"l": 60, "r": 20, "t": 50, "b": 40})
    return figure
