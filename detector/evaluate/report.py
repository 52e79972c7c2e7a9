"""The HTML report: a summary table, a per-file table, and one PNG per file.

Each plot shows the series (a multi-metric file: every metric standardised on its
warm-up rows and clipped to +-10), the labelled windows shaded, the warm-up that is not scored in grey,
the rows the detector flagged, the alerts it raised, and below it the anomaly score
with the detector's threshold and the NAB-optimised threshold. The PNGs go to
``<report stem>_files/`` next to the HTML file. A corpus of many streams (a publisher
recording) gets at most ``MAX_PLOTS`` plots: files with labelled windows or alarms first.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from detector.evaluate.datasets import Series
from detector.evaluate.interactive import write_interactive, zoomable_link
from detector.evaluate.metrics import duration
from detector.evaluate.runner import Scored

MAX_PLOTS = 100


def write_report(path: Path, summary: dict, series: Sequence[Series], scored: Sequence[Scored],
                 jobs: int = 1) -> Path:
    """Write the report to ``path`` (plots drawn by ``jobs`` processes); return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image_dir = path.parent / f"{path.stem}_files"
    image_dir.mkdir(exist_ok=True)
    nab_threshold = summary["nab_detail"]["standard"]["threshold"]
    images, tasks = [], []
    for s, sc in _worth_plotting(series, scored, summary):
        image = image_dir / f"{s.category.replace('/', '_')}__{s.name}.png"
        entry = summary["files"][s.source or s.key]
        tasks.append((image, s, sc, entry, summary["detector"], nab_threshold))
        images.append((s.source or s.key, image.relative_to(path.parent).as_posix()))
    if jobs > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for done in [pool.submit(plot_file, *task) for task in tasks]:
                done.result()
    else:
        for task in tasks:
            plot_file(*task)
    zoomable = write_interactive(path, tasks)
    path.write_text(_html(summary, images).replace("<h2>Plots</h2>", "<h2>Plots</h2>\n"
                    + zoomable_link(zoomable.name)), encoding="utf-8")
    return path


def _worth_plotting(series: Sequence[Series], scored: Sequence[Scored], summary: dict
                    ) -> list[tuple[Series, Scored]]:
    pairs = list(zip(series, scored, strict=True))
    if len(pairs) <= MAX_PLOTS:
        return pairs

    def interesting(pair: tuple[Series, Scored]) -> bool:
        event = summary["files"][pair[0].source or pair[0].key]["event"]
        return bool(event["windows"] or event["alarms"])

    chosen = {id(p) for p in sorted(pairs, key=lambda p: not interesting(p))[:MAX_PLOTS]}
    return [p for p in pairs if id(p) in chosen]


def plot_file(image: Path, series: Series, scored: Scored, entry: dict, detector: str,
              nab_threshold: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = (series.timestamps * 1000).astype("datetime64[ms]")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(14, 5.6), sharex=True,
                                      gridspec_kw={"height_ratios": [2.2, 1]})
    try:
        for ax in (top, bottom):
            if series.warmup_rows > 0:
                ax.axvspan(times[0], times[min(series.warmup_rows, series.rows - 1)],
                           color="0.85", alpha=0.6, lw=0,
                           label="warm-up (not scored)" if ax is top else None)
            for k, span in enumerate(series.spans):
                ax.axvspan(times[span.first], times[span.last], color="tab:orange", alpha=0.25,
                           lw=0, label="labelled window" if k == 0 and ax is top else None)
        values = _display_values(series)
        if values.shape[1] == 1:
            top.plot(times, values[:, 0], lw=0.7, color="tab:blue", label=series.columns[0])
            flagged = np.flatnonzero(scored.flags)
            top.plot(times[flagged], values[flagged, 0], ".", ms=3.5, color="tab:red",
                     label=f"flagged ({flagged.size})")
            top.set_ylabel(series.columns[0])
        else:
            for j, column in enumerate(series.columns):
                top.plot(times, values[:, j], lw=0.6, alpha=0.85, label=column)
            flagged = np.flatnonzero(scored.flags)
            top.plot(times[flagged], np.full(flagged.size, np.nanmax(values) * 1.02), "|",
                     ms=6, color="tab:red", label=f"flagged ({flagged.size})")
            top.set_ylabel("standardised value")
        fired = sorted({a for a, _, _ in scored.alerts})
        if fired:
            for row in fired:
                top.axvline(times[row], color="tab:red", lw=0.9, alpha=0.7)
            top.plot([], [], color="tab:red", lw=0.9, label=f"alert fired ({len(fired)})")
        top.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=7, frameon=False)
        top.set_title(_title(series, entry, detector), fontsize=10)

        bottom.plot(times, scored.scores, lw=0.6, color="tab:purple", label="anomaly score")
        thresholds = scored.thresholds
        if np.isfinite(thresholds).any():
            bottom.plot(times, thresholds, "--", lw=0.9, color="tab:red",
                        label="detector threshold")
        if nab_threshold is not None and 0 <= nab_threshold <= 1:
            bottom.axhline(nab_threshold, ls=":", lw=1.0, color="tab:green",
                           label=f"NAB threshold ({nab_threshold:.3f})")
        bottom.set_ylim(-0.03, 1.05)
        bottom.set_ylabel("score")
        bottom.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=7, frameon=False)
        fig.autofmt_xdate()
        # Fixed margins: tight_layout would draw every figure twice.
        fig.subplots_adjust(left=0.06, right=0.83, top=0.94, bottom=0.12, hspace=0.06)
        fig.savefig(image, dpi=90)
    finally:
        plt.close(fig)


def _display_values(series: Series) -> np.ndarray:
    if series.values.shape[1] == 1:
        return series.values
    head = series.values[: max(series.warmup_rows, 2)]
    std = head.std(axis=0)
    standardised = (series.values - head.mean(axis=0)) / np.where(std > 0, std, 1.0)
    # One wild reading would squash every other line flat.
    return np.clip(standardised, -10.0, 10.0)


def _title(series: Series, entry: dict, detector: str) -> str:
    point, event = entry["point"], entry["event"]
    parts = [f"{detector} on {series.source or series.key}",
             f"windows {event['detected']}/{event['windows']} detected",
             f"{event['false_alarms']} false alarms",
             f"F1 {_fmt(point['f1'])}",
             f"NAB raw {entry['nab_raw']['standard']:.2f}"]
    return "  |  ".join(parts)


def _plot_note(plotted: int, files: int) -> str:
    if plotted == files:
        return ""
    return (f"<p class='note'>{plotted} of {files} files plotted (those with labelled "
            "windows or alarms first).</p>")


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f0f0f0; }
img { max-width: 100%; border: 1px solid #ddd; margin-bottom: 1.5em; }
.note { color: #555; font-size: 0.9em; }
"""


def _leaderboard(summary: dict) -> str:
    if not summary.get("leaderboard"):
        return ""
    from detector.models.leaderboard import html_table

    return html_table(summary["leaderboard"])


def _html(summary: dict, images: list[tuple[str, str]]) -> str:
    from detector.evaluate.summary import comparison

    esc = html.escape
    summary_rows = "\n".join(
        f"<tr><td>{esc(a)}</td><td>{esc(b)}</td><td>{esc(c)}</td><td>{esc(d)}</td></tr>"
        for a, b, c, d in comparison(summary))
    speed = _fmt(summary["us_per_reading"], 1)
    category_rows = "".join(
        f"<tr><td>{esc(name)}</td><td>{c['files']}</td><td>{c['detected_windows']}/"
        f"{c['windows']}</td><td>{c['false_positive_rows']}</td>"
        + "".join(f"<td>{_fmt(c.get(p), 1)}</td>" for p in summary["nab"])
        + "".join(f"<td>{_fmt((c.get('random') or {}).get(p), 1)}</td>" for p in summary["nab"])
        + "</tr>" for name, c in (summary.get("categories") or {}).items())
    categories = "" if not category_rows else (
        "<h2>NAB by category</h2><p class='note'>Each profile at the threshold optimised over "
        "the whole corpus; a category without windows scores '-' (only its false positives "
        "count, in the corpus score).</p><table><thead><tr><th>category</th><th>files</th>"
        "<th>windows detected</th><th>false-positive rows</th>"
        + "".join(f"<th>{esc(p)}</th>" for p in summary["nab"])
        + "".join(f"<th>random {esc(p)}</th>" for p in summary["nab"])
        + f"</tr></thead><tbody>{category_rows}</tbody></table>")
    file_rows = []
    for name, f in summary["files"].items():
        p, e = f["point"], f["event"]
        file_rows.append(
            f"<tr><td><a href='#{esc(name)}'>{esc(name)}</a></td><td>{f['rows']}</td>"
            f"<td>{e['detected']}/{e['windows']}</td><td>{e['alarms']}</td>"
            f"<td>{e['false_alarms']}</td><td>{_fmt(p['precision'])}</td>"
            f"<td>{_fmt(p['recall'])}</td><td>{_fmt(p['f1'])}</td>"
            f"<td>{duration(e['delay_s_median'])}</td><td>{f['nab_raw']['standard']:.2f}</td>"
            f"<td>{_fmt(f.get('us_per_reading'), 1)}</td></tr>")
    figures = "\n".join(
        f"<h3 id='{esc(name)}'>{esc(name)}</h3>\n<img src='{esc(src)}' alt='{esc(name)}'>"
        for name, src in images)
    thresholds = ", ".join(f"{name} {detail['threshold']:.4f}"
                           for name, detail in summary["nab_detail"].items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>iotwatch evaluate: {esc(summary['detector'])}</title>
<style>{_STYLE}</style></head><body>
<h1>{esc(summary['detector'])} on {esc(summary['data_dir'])}</h1>
<p class="note">{summary['files_count']} {esc(summary['format'])} files, {summary['rows']:,} rows,
{summary['readings']:,} readings scored strictly online (score, then learn), seed {summary['seed']}.
NAB thresholds optimised over the corpus: {esc(thresholds)}.</p>
<table><thead><tr><th>metric</th><th>{esc(summary['detector'])}</th>
<th>random baseline (seed {summary['seed']})</th><th>flag every row</th></tr></thead>
<tbody>{summary_rows}</tbody></table>
<p class="note">An alarm is a run of rows in which the detector was in an alert state (the
random baseline: a run of flagged rows); '-' means undefined (nothing to divide by).
{speed} us per reading.</p>
{_leaderboard(summary)}
{categories}
<h2>Files</h2>
<table><thead><tr><th>file</th><th>rows</th><th>windows detected</th><th>alarms</th>
<th>false alarms</th><th>P</th><th>R</th><th>F1</th><th>median delay</th><th>NAB raw</th>
<th>us/reading</th></tr></thead>
<tbody>{''.join(file_rows)}</tbody></table>
<h2>Plots</h2>
{_plot_note(len(images), summary['files_count'])}
{figures}
</body></html>
"""
