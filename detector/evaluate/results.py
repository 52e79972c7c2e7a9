"""Per-file scores in NAB's results layout, so any NAB-compatible scorer can read them.

``<out>/<detector>/<category>/<detector>_<name>.csv`` with the columns
``timestamp,value,anomaly_score,label`` (same rows and order as the input; ``label`` is
1 inside a labelled window), then ``anomaly`` (the detector's own flag). A multi-metric
file (SKAB) has no single value: ``value`` is the value of the stream that gave the
row's score, named in an extra ``trigger`` column.
"""

from __future__ import annotations

import csv
from pathlib import Path

from detector.evaluate.datasets import Series
from detector.evaluate.runner import DEVICE_STREAM, Scored

HEADER = ["timestamp", "value", "anomaly_score", "label", "anomaly"]


def results_path(out_dir: Path, detector: str, series: Series) -> Path:
    return out_dir / detector / series.category / f"{detector}_{series.name}.csv"


def write_results(out_dir: Path, detector: str, series: Series, scored: Scored) -> Path:
    """Write one file's results; return its path."""
    path = results_path(out_dir, detector, series)
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = series.labels().tolist()
    scores = scored.scores.tolist()
    flags = scored.flags.tolist()
    stamps = series.stamps or [f"{t:.3f}" for t in series.timestamps.tolist()]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        if scored.trigger is None:
            writer.writerow(HEADER)
            values = series.values[:, 0].tolist()
            for row in zip(stamps, values, scores, labels, flags, strict=True):
                writer.writerow([row[0], f"{row[1]:.10g}", f"{row[2]:.6f}", row[3], int(row[4])])
        else:
            writer.writerow([*HEADER, "trigger"])
            column = {m: j for j, m in enumerate(series.metrics)}
            matrix = series.values.tolist()
            for i, trigger in enumerate(scored.trigger):
                value = "" if trigger == DEVICE_STREAM else f"{matrix[i][column[trigger]]:.10g}"
                writer.writerow([stamps[i], value, f"{scores[i]:.6f}", labels[i], int(flags[i]),
                                 trigger])
    return path
