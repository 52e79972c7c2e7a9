"""``iotwatch evaluate --leaderboard``: every contender on the same data, one table.

Rows: the evaluated detector (the online default unless ``--detector``/``--model``), each
single registered stream detector, each model kind trained on each file's unscored
prefix, the random baseline, and, on SKAB, the published leaderboard numbers as context
(F1 only: they come from SKAB's own README, not from this run).

>>> rows = [{"name": "a", "kind": "detector", "nab_standard": 31.2, "point_f1": 0.2}]
>>> print(format_table(rows, "nab"))
contender                           kind      NAB std SKAB F1     FAR     MAR point F1 us/reading
a                                   detector     31.2       -       -       -     0.20          -
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

SKIPPED = ("random", "river_hst")  # the baseline has its own row; river_hst is hst again
# Published SKAB leaderboard F1 (github.com/waico/SKAB, README), for context.
SKAB_REFERENCES = (("SKAB leaderboard: Conv-AE", 0.78), ("SKAB leaderboard: Isolation Forest",
                                                         0.29))


def row(name: str, kind: str, summary: dict) -> dict[str, Any]:
    skab = summary.get("skab") or {}
    return {"name": name, "kind": kind,
            "nab_standard": (summary.get("nab") or {}).get("standard"),
            "skab_f1": skab.get("f1"), "far": skab.get("far"), "mar": skab.get("mar"),
            "point_f1": (summary.get("point") or {}).get("f1", summary.get("f1")),
            "us_per_reading": summary.get("us_per_reading")}


def contenders(evaluated: str) -> list[tuple[str, str]]:
    """(name, kind) of every contender other than the evaluated one."""
    from detector.engine.registry import univariate_names
    from detector.evaluate.runner import DEFAULT_NAME
    from detector.models.kinds import KINDS

    out = [] if evaluated == DEFAULT_NAME else [(DEFAULT_NAME, "default")]
    out += [(n, "detector") for n in univariate_names() if n not in SKIPPED and n != evaluated]
    out += [(k, "model") for k in sorted(KINDS) if k != evaluated]
    return out


def build(evaluated: dict, fmt: str, run: Callable[[str, str], dict]) -> list[dict[str, Any]]:
    """The leaderboard: ``run(name, kind)`` evaluates one contender and returns its summary."""
    rows = [row(evaluated["detector"], "evaluated", evaluated)]
    for name, kind in contenders(evaluated["detector"]):
        rows.append(row(name, kind, run(name, kind)))
    random = evaluated.get("baseline_random") or {}
    rows.append({"name": f"random (seed {random.get('seed', 42)})", "kind": "baseline",
                 "nab_standard": (random.get("nab") or {}).get("standard"),
                 "skab_f1": (random.get("skab") or {}).get("f1"),
                 "far": (random.get("skab") or {}).get("far"),
                 "mar": (random.get("skab") or {}).get("mar"), "point_f1": random.get("f1"),
                 "us_per_reading": None})
    if fmt == "skab":
        rows += [{"name": n, "kind": "published", "skab_f1": f1} for n, f1 in SKAB_REFERENCES]
    return rows


def _cell(value: Any, digits: int = 2, percent: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f} %" if percent else f"{value:.{digits}f}"


def columns(r: dict[str, Any]) -> list[str]:
    return [r["name"], r["kind"], _cell(r.get("nab_standard"), 1), _cell(r.get("skab_f1")),
            _cell(r.get("far"), percent=True), _cell(r.get("mar"), percent=True),
            _cell(r.get("point_f1")), _cell(r.get("us_per_reading"), 1)]


HEADER = ["contender", "kind", "NAB std", "SKAB F1", "FAR", "MAR", "point F1", "us/reading"]


def format_table(rows: Sequence[dict[str, Any]], fmt: str) -> str:
    widths = [35, 9, 7, 7, 7, 7, 8, 10]
    lines = [f"{HEADER[0]:<{widths[0]}} {HEADER[1]:<{widths[1]}}"
             + "".join(f" {h:>{w}}" for h, w in zip(HEADER[2:], widths[2:], strict=True))]
    for r in rows:
        c = columns(r)
        lines.append(f"{c[0][:widths[0]]:<{widths[0]}} {c[1]:<{widths[1]}}"
                     + "".join(f" {v:>{w}}" for v, w in zip(c[2:], widths[2:], strict=True)))
    return "\n".join(lines)


def html_table(rows: Sequence[dict[str, Any]]) -> str:
    import html

    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADER)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in columns(r)) + "</tr>"
                   for r in rows)
    return (f"<h2>Leaderboard</h2><p class='note'>Every contender on the same files; models "
            f"trained on each file's unscored prefix; published numbers are context from "
            f"their authors, not from this run.</p><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>")
