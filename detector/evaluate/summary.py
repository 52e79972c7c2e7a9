"""Everything measured about one detector on one corpus, as a JSON-ready summary and a table.

>>> import numpy as np
>>> from detector.evaluate.datasets import Series, Span
>>> s = Series("cat", "f", "cat", "f", ("value",), np.arange(40) * 60.0,
...            np.zeros((40, 1)), (Span(30, 35),), warmup_rows=6)
>>> flags = np.zeros(40, dtype=bool); flags[31:34] = True
>>> result = evaluate([s], [flags * 0.9], [flags])
>>> round(result.nab["standard"].score, 1), result.point.recall, result.events.delays_s
(99.1, 0.5, (60.0,))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detector.evaluate import nab
from detector.evaluate.datasets import SKAB_TRAINING_ROWS, Series
from detector.evaluate.metrics import (
    EventStats,
    PointCounts,
    duration,
    event_stats,
    flag_runs,
    point_counts,
)
from detector.evaluate.runner import Scored


@dataclass
class Evaluation:
    """Metrics of one set of scores and flags over a corpus."""

    nab: dict[str, nab.ProfileScore]
    point: PointCounts
    events: EventStats
    alerts: EventStats | None
    files: dict[str, dict]
    flag_all: PointCounts = PointCounts()  # a detector that flags every scored row
    labelled: PointCounts = PointCounts()  # counts over files that carry labels (SKAB's rule)
    labelled_flag_all: PointCounts = PointCounts()
    categories: dict[str, dict] | None = None  # NAB per category at the corpus thresholds

    def headline(self) -> dict:
        return {
            "nab": {name: r.score for name, r in self.nab.items()},
            "precision": self.point.precision, "recall": self.point.recall,
            "f1": self.point.f1,
        }


def evaluate(series: Sequence[Series], scores: Sequence[np.ndarray],
             flags: Sequence[np.ndarray],
             alerts: Sequence[list[tuple[int, int]]] | None = None) -> Evaluation:
    """Point, event and NAB metrics of ``scores``/``flags`` (row-aligned with ``series``)."""
    files = [nab.ScoredFile(s.key, np.asarray(sc), tuple(nab.Window(sp.first, sp.last)
                                                         for sp in s.spans))
             for s, sc in zip(series, scores, strict=True)]
    nab_results = nab.score_profiles(files)
    total_point = flag_all = labelled = labelled_flag_all = PointCounts()
    total_events = EventStats()
    total_alerts: EventStats | None = EventStats() if alerts is not None else None
    per_file: dict[str, dict] = {}
    for index, (s, flag) in enumerate(zip(series, flags, strict=True)):
        point = point_counts(s.labels(), flag, s.warmup_rows)
        events = event_stats(s.timestamps, s.spans, flag_runs(flag), s.warmup_rows)
        total_point += point
        total_events += events
        everything = point_counts(s.labels(), np.ones(s.rows, dtype=bool), s.warmup_rows)
        flag_all += everything
        if s.labelled:
            labelled += point
            labelled_flag_all += everything
        entry = {"rows": s.rows, "windows": len(s.spans), "scored_from_row": s.warmup_rows,
                 "point": point.as_dict(), "event": events.as_dict(),
                 "nab_raw": {name: r.per_file[s.key] for name, r in nab_results.items()}}
        if alerts is not None and total_alerts is not None:
            alert_stats = event_stats(s.timestamps, s.spans, alerts[index], s.warmup_rows)
            total_alerts += alert_stats
            entry["alerts"] = alert_stats.as_dict()
        per_file[s.source or s.key] = entry
    return Evaluation(nab_results, total_point, total_events, total_alerts, per_file, flag_all,
                      labelled, labelled_flag_all, _categories(series, files, nab_results))


def _categories(series: Sequence[Series], files: Sequence[nab.ScoredFile],
                results: dict[str, nab.ProfileScore]) -> dict[str, dict]:
    """NAB per category, each profile at the threshold optimised over the whole corpus."""
    grouped: dict[str, list[nab.ScoredFile]] = {}
    for s, f in zip(series, files, strict=True):
        grouped.setdefault(s.category, []).append(f)
    out = {}
    for category, members in sorted(grouped.items()):
        scores = {name: nab.score_at(members, nab.PROFILES[name], r.threshold)
                  for name, r in results.items()}
        standard = scores["standard"]
        out[category] = {"files": len(members), "windows": standard.windows,
                         "detected_windows": standard.detected_windows,
                         "false_positive_rows": standard.false_positive_rows,
                         **{name: r.score for name, r in scores.items()}}
    return out


def evaluate_scored(series: Sequence[Series], scored: Sequence[Scored]) -> Evaluation:
    """:func:`evaluate` of a detector run (its flags are already its alert state)."""
    return evaluate(series, [s.scores for s in scored], [s.flags for s in scored])


def evaluate_flag_all(series: Sequence[Series]) -> Evaluation:
    """The reference that flags every row with score 1."""
    return evaluate(series, [np.ones(s.rows) for s in series],
                    [np.ones(s.rows, dtype=bool) for s in series])


def random_spread(series: Sequence[Series], seeds: Sequence[int] = tuple(range(10))) -> dict:
    """NAB standard score of the random baseline over several seeds: how much luck is worth.

    On 25 windows a random detector with an optimised threshold scores anywhere from
    about 1 to 30 depending on its seed, so one random number is a weak yardstick.
    """
    from detector.evaluate.runner import RANDOM, DetectorSpec, score_series

    profile = nab.PROFILES["standard"]
    scores = []
    for seed in seeds:
        spec = DetectorSpec(RANDOM, None, seed)
        files = [nab.ScoredFile(s.key, score_series(spec, s, lambda rows: None).scores,
                                tuple(nab.Window(sp.first, sp.last) for sp in s.spans))
                 for s in series]
        scores.append(nab.score_corpus(files, profile).score)
    valid = [v for v in scores if v is not None]
    if not valid:
        return {"seeds": list(seeds), "standard": None}
    return {"seeds": list(seeds), "standard": {
        "mean": sum(valid) / len(valid), "min": min(valid), "max": max(valid)}}


def build_summary(*, detector: str, fmt: str, data_dir: str, labels: str | None, seed: int,
                  series: Sequence[Series], scored: Sequence[Scored], result: Evaluation,
                  baseline: Evaluation | None, results_dir: str | None,
                  components: dict[str, Evaluation] | None = None,
                  spread: dict | None = None, flag_all: Evaluation | None = None) -> dict:
    """The ``--json`` summary (keys documented in docs/evaluation.md)."""
    seconds = sum(s.seconds for s in scored)
    readings = sum(s.readings for s in scored)
    summary: dict = {
        "detector": detector, "format": fmt, "data_dir": data_dir, "labels": labels,
        "seed": seed, "files_count": len(series), "rows": sum(s.rows for s in series),
        "readings": readings,
        **result.headline(),
        "nab_detail": {name: r.as_dict() for name, r in result.nab.items()},
        "point": result.point.as_dict(),
        "event": result.events.as_dict(),
        "detector_seconds": seconds,
        "us_per_reading": 1e6 * seconds / readings if readings else None,
        "results_dir": results_dir,
    }
    # Point-wise F1 of flagging everything: the floor for F1 when windows are long (SKAB).
    summary["baseline_flag_all"] = {"precision": result.flag_all.precision,
                                    "recall": result.flag_all.recall, "f1": result.flag_all.f1}
    if flag_all is not None:
        summary["baseline_flag_all"].update(_reference(flag_all, fmt))
    if fmt == "skab":
        summary["skab"] = _leaderboard(result.labelled, series)
    if result.categories and fmt != "skab":
        summary["categories"] = result.categories
        if baseline is not None and baseline.categories:
            for name, entry in summary["categories"].items():
                entry["random"] = {k: v for k, v in baseline.categories[name].items()
                                   if k in result.nab}
    if baseline is not None:
        summary["baseline_random"] = {**baseline.headline(), "seed": seed,
                                      **_reference(baseline, fmt)}
    if spread is not None:
        summary["baseline_random_seeds"] = spread
    if components:
        summary["components"] = {name: {**ev.headline(), "event": ev.events.as_dict()}
                                 for name, ev in components.items()}
    files = {}
    for s, sc in zip(series, scored, strict=True):
        entry = dict(result.files[s.source or s.key])
        entry["us_per_reading"] = 1e6 * sc.seconds / sc.readings if sc.readings else None
        files[s.source or s.key] = entry
    summary["files"] = files
    return summary


def _leaderboard(counts: PointCounts, series: Sequence[Series]) -> dict:
    """SKAB's leaderboard numbers: point-wise over the labelled files' rows after row 400."""
    return {"f1": counts.f1, "far": counts.far, "mar": counts.mar, "tp": counts.tp,
            "fp": counts.fp, "fn": counts.fn, "tn": counts.tn,
            "files": sum(1 for s in series if s.labelled)}


def _reference(ev: Evaluation, fmt: str) -> dict:
    """Every metric the comparison shows, for a reference detector."""
    out = {"nab": {name: r.score for name, r in ev.nab.items()}, "point": ev.point.as_dict(),
           "event": ev.events.as_dict()}
    if fmt == "skab":
        out["skab"] = _leaderboard(ev.labelled, ())
    return out


def comparison(summary: dict) -> list[tuple[str, str, str, str]]:
    """(metric, detector, random baseline, flag every row): the rows the CLI and report show.

    One definition each: an *alarm* is a run of rows in which the detector was in an alert
    state (for the random baseline: a run of flagged rows); "-" means undefined (nothing
    to divide by, e.g. no window detected has no delay).
    """
    columns = [summary, summary.get("baseline_random") or {},
               summary.get("baseline_flag_all") or {}]

    def row(label: str, get) -> tuple[str, str, str, str]:
        cells = []
        for col in columns:
            try:
                cells.append(get(col))
            except (KeyError, TypeError):
                cells.append("-")
        return (label, *cells)

    rows = [row(f"NAB {name}", lambda c, n=name: _num(c["nab"][n], 0, 1).strip())
            for name in summary["nab"]]
    if "skab" in summary:
        rows += [
            row("SKAB F1 (leaderboard rule)", lambda c: _num(c["skab"]["f1"]).strip()),
            row("SKAB false alarm rate FAR", lambda c: _pct(c["skab"]["far"])),
            row("SKAB missed alarm rate MAR", lambda c: _pct(c["skab"]["mar"])),
        ]
    rows += [
        row("point precision", lambda c: _num(c["point"]["precision"]).strip()),
        row("point recall", lambda c: _num(c["point"]["recall"]).strip()),
        row("point F1", lambda c: _num(c["point"]["f1"]).strip()),
        row("windows detected", lambda c: f"{c['event']['detected']}/{c['event']['windows']}"),
        row("alarms (true)", lambda c: f"{c['event']['alarms']} ({c['event']['true_alarms']})"),
        row("false alarms per day", lambda c: _num(c["event"]["false_alarms_per_day"], 0,
                                                   2).strip()),
        row("median detection delay", lambda c: duration(c["event"]["delay_s_median"])),
    ]
    return rows


def format_comparison(summary: dict) -> str:
    header = (f"{'':<28} {summary['detector']:>12} "
              f"{'random (seed ' + str(summary['seed']) + ')':>18} {'flag every row':>15}")
    lines = [header]
    for label, a, b, c in comparison(summary):
        lines.append(f"{label:<28} {a:>12} {b:>18} {c:>15}")
    return "\n".join(lines)


def format_categories(summary: dict) -> str:
    """NAB per category (corpus thresholds), beside the random baseline's."""
    categories = summary.get("categories")
    if not categories:
        return ""
    names = list(summary["nab"])
    head = (f"{'category':<28} {'files':>5} {'win':>4} {'det':>4} {'FP rows':>7} "
            + " ".join(f"{_PROFILE_SHORT.get(n, n):>8}" for n in names)
            + "   random " + "/".join(_PROFILE_SHORT.get(n, n) for n in names))
    lines = [head]
    for name, c in categories.items():
        random_part = "/".join(_num((c.get("random") or {}).get(n), 0, 1).strip()
                               for n in names)
        lines.append(f"{_short(name, 28):<28} {c['files']:>5} {c['windows']:>4} "
                     f"{c['detected_windows']:>4} {c['false_positive_rows']:>7} "
                     + " ".join(_num(c.get(n), 8, 1) for n in names) + f"   {random_part}")
    return "\n".join(lines)


_PROFILE_SHORT = {"standard": "standard", "reward_low_FP_rate": "low FP",
                  "reward_low_FN_rate": "low FN"}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def format_table(summary: dict) -> str:
    """A plain-text table: one line per file, then the corpus totals."""
    lines = []
    head = (f"{'file':<52} {'rows':>6} {'win':>4} {'det':>4} {'P':>5} {'R':>5} {'F1':>5} "
            f"{'alarms':>6} {'FA/day':>7} {'delay':>8} {'NABraw':>7}")
    lines.append(head)
    lines.append("-" * len(head))
    for name, f in summary["files"].items():
        p, e = f["point"], f["event"]
        lines.append(
            f"{_short(name, 52):<52} {f['rows']:>6} {e['windows']:>4} {e['detected']:>4} "
            f"{_num(p['precision'])} {_num(p['recall'])} {_num(p['f1'])} {e['alarms']:>6} "
            f"{_num(e['false_alarms_per_day'], 7, 1)} {duration(e['delay_s_median']):>8} "
            f"{f['nab_raw']['standard']:>7.2f}")
    lines.append("-" * len(head))
    p, e = summary["point"], summary["event"]
    lines.append(
        f"{'TOTAL':<52} {summary['rows']:>6} {e['windows']:>4} {e['detected']:>4} "
        f"{_num(p['precision'])} {_num(p['recall'])} {_num(p['f1'])} {e['alarms']:>6} "
        f"{_num(e['false_alarms_per_day'], 7, 1)} {duration(e['delay_s_median']):>8}")
    lines.append("")
    lines.append(f"detector {summary['detector']} on {summary['files_count']} {summary['format']} "
                 f"files, {summary['readings']:,} readings, "
                 f"{_num(summary['us_per_reading'], 0, 1).strip()} us/reading")
    nab_line = "NAB score: " + ", ".join(
        f"{name} {_num(score, 0, 1).strip()}" for name, score in summary["nab"].items())
    lines.append(nab_line)
    if "baseline_random" in summary:
        base = summary["baseline_random"]["nab"]
        line = "random baseline: " + ", ".join(
            f"{name} {_num(score, 0, 1).strip()}" for name, score in base.items())
        spread = (summary.get("baseline_random_seeds") or {}).get("standard")
        if spread:
            line += (f" (standard over seeds 0-9: mean {spread['mean']:.1f}, "
                     f"{spread['min']:.1f} to {spread['max']:.1f})")
        lines.append(line)
    lines.append(f"point-wise precision {_num(p['precision']).strip()}, recall "
                 f"{_num(p['recall']).strip()}, F1 {_num(p['f1']).strip()} (flagging every row: "
                 f"F1 {_num(summary['baseline_flag_all']['f1']).strip()}); event recall "
                 f"{_num(e['recall']).strip()} ({e['detected']}/{e['windows']}), event precision "
                 f"{_num(e['precision']).strip()} ({e['true_alarms']}/{e['alarms']})")
    if "skab" in summary:
        sk, ref = summary["skab"], summary["baseline_flag_all"].get("skab") or {}
        lines.append(f"SKAB leaderboard rule ({sk['files']} labelled files, rows after the "
                     f"first {SKAB_TRAINING_ROWS}): F1 {_num(sk['f1']).strip()}, FAR {_pct(sk['far'])}, MAR "
                     f"{_pct(sk['mar'])} (flagging every row: F1 {_num(ref.get('f1')).strip()}, "
                     f"FAR {_pct(ref.get('far'))}, MAR {_pct(ref.get('mar'))})")
    lines.append("")
    lines.append(format_comparison(summary))
    categories = format_categories(summary)
    if categories:
        lines.append("")
        lines.append(categories)
    for name, comp in (summary.get("components") or {}).items():
        lines.append(f"  {name} only: NAB standard {_num(comp['nab']['standard'], 0, 1).strip()}, "
                     f"F1 {_num(comp['f1']).strip()}, event recall "
                     f"{_num(comp['event']['recall']).strip()}")
    return "\n".join(lines)


def _num(value: float | None, width: int = 5, digits: int = 2) -> str:
    text = "-" if value is None else f"{value:.{digits}f}"
    return f"{text:>{width}}"



def _short(text: str, width: int) -> str:
    return text if len(text) <= width else "..." + text[-(width - 3):]
