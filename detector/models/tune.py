"""Parameter search for a registered detector or a model kind, on labelled data.

The data is split by files (whole files on one side) or by time (each file's head for
search, its tail held out), never by shuffled rows. Every candidate is scored on the
search split with the evaluation code (``iotwatch evaluate``), the best one is then
scored once on the held-out split. Trials are appended to ``trials.csv`` as they finish,
so an interrupted search resumes where it stopped.

The objective is the NAB standard score for NAB data, SKAB's leaderboard F1 for SKAB, and
point F1 for the publisher's recordings.

A space is YAML ``key: [values]``. For ``--detector NAME`` a key is a parameter of that
detector (``halflife``) or a dotted path into the engine settings
(``decision.threshold``, ``calibration.half_decades``); for ``--model KIND`` a model
parameter (``n_clusters``) or ``windows`` / ``lags``. Random search draws from the lists,
or uniformly from ``{low: A, high: B}`` (``log: true`` for a log scale).

>>> grid({"a": [1, 2], "b": ["x"]})
[{'a': 1, 'b': 'x'}, {'a': 2, 'b': 'x'}]
>>> left, right = split_files(["f1", "f2", "f3", "f4", "f5"], 0.4, seed=0)
>>> sorted(left + right), set(left) & set(right)
(['f1', 'f2', 'f3', 'f4', 'f5'], set())
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from detector.evaluate.datasets import Series, Span

TRIALS = "trials.csv"
BEST = "best.yaml"


def grid(space: dict[str, Any]) -> list[dict[str, Any]]:
    keys = sorted(space)
    for key in keys:
        if not isinstance(space[key], list) or not space[key]:
            raise ValueError(f"space.{key}: grid search needs a non-empty list of values")
    return [dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(space[k] for k in keys))]


def sample(space: dict[str, Any], trials: int, seed: int) -> list[dict[str, Any]]:
    """Up to ``trials`` distinct random candidates (fewer when the space is smaller).

    >>> len(sample({"a": [1, 2]}, 10, seed=0))
    2
    """
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for _ in range(trials * 20):
        if len(out) == trials:
            break
        candidate = {}
        for key in sorted(space):
            choice = space[key]
            if isinstance(choice, list):
                candidate[key] = rng.choice(choice)
            elif isinstance(choice, dict) and {"low", "high"} <= set(choice):
                low, high = float(choice["low"]), float(choice["high"])
                if choice.get("log"):
                    value = math.exp(rng.uniform(math.log(low), math.log(high)))
                else:
                    value = rng.uniform(low, high)
                integer = isinstance(choice["low"], int) and isinstance(choice["high"], int)
                candidate[key] = round(value) if integer else float(f"{value:.4g}")
            else:
                raise ValueError(f"space.{key}: expected a list or {{low, high}}, got {choice!r}")
        if key_of(candidate) not in seen:  # the same trial twice would be run twice
            seen.add(key_of(candidate))
            out.append(candidate)
    return out


def split_files(keys: Sequence[str], holdout: float, seed: int) -> tuple[list[str], list[str]]:
    """(search files, held-out files): whole files, chosen by a seeded shuffle of files."""
    order = sorted(keys)
    random.Random(seed).shuffle(order)
    cut = max(1, round(len(order) * holdout)) if len(order) > 1 else 0
    return sorted(order[cut:]), sorted(order[:cut])


def split_time(series: Series, holdout: float) -> tuple[Series, Series]:
    """(head, tail) of one file by row order; spans are cut at the boundary."""
    cut = series.rows - max(1, round(series.rows * holdout))
    return _rows(series, 0, cut, "head"), _rows(series, cut, series.rows, "tail")


def _rows(s: Series, begin: int, end: int, part: str) -> Series:
    from detector.evaluate.nab import probation_rows

    spans = tuple(Span(max(sp.first, begin) - begin, min(sp.last, end - 1) - begin, sp.kind)
                  for sp in s.spans if sp.last >= begin and sp.first < end)
    rows = end - begin
    warmup = max(0, min(s.warmup_rows - begin, rows)) if begin == 0 else probation_rows(rows)
    return replace(s, name=f"{s.name}.{part}", timestamps=s.timestamps[begin:end],
                   values=s.values[begin:end], spans=spans, warmup_rows=warmup,
                   source=f"{s.source}#{part}",
                   stamps=s.stamps[begin:end] if s.stamps else ())


def heads_of(search: Sequence[Series], held: Sequence[Series]) -> dict[str, Series]:
    """Held-out tail source -> its file's head (time split), to train a model on.

    >>> import numpy as np
    >>> s = Series("c", "n", "c", "n", ("v",), np.arange(10.0), np.ones((10, 1)), (), 1, "c/n.csv")
    >>> (head,), (tail,) = split([s], "time", 0.3, 0)
    >>> heads_of([head], [tail])["c/n.csv#tail"].source
    'c/n.csv#head'
    """
    by_file = {s.source.rsplit("#", 1)[0]: s for s in search}
    return {t.source: by_file[t.source.rsplit("#", 1)[0]] for t in held
            if t.source.endswith("#tail") and t.source.rsplit("#", 1)[0] in by_file}


def split(series: Sequence[Series], how: str, holdout: float,
          seed: int) -> tuple[list[Series], list[Series]]:
    if how == "files":
        if len(series) < 2:
            raise ValueError("--split files needs at least 2 files; use --split time")
        left, right = split_files([s.key for s in series], holdout, seed)
        by_key = {s.key: s for s in series}
        return [by_key[k] for k in left], [by_key[k] for k in right]
    if how == "time":
        pairs = [split_time(s, holdout) for s in series]
        return [a for a, _ in pairs], [b for _, b in pairs]
    raise ValueError(f"--split must be files or time, got {how!r}")


def objective(fmt: str, evaluation: Any) -> tuple[str, float]:
    if fmt == "nab":
        return "nab_standard", float(evaluation.nab["standard"].score)
    if fmt == "skab":
        return "skab_f1", float(evaluation.labelled.f1 or 0.0)
    return "point_f1", float(evaluation.point.f1 or 0.0)


def spec_for(target: str, kind: str, candidate: dict[str, Any], base: Any, seed: int,
             earlier: dict[str, Series] | None = None):
    """The DetectorSpec of one candidate: a detector's settings or a model plan.

    ``earlier``: for a model, the series each held-out one follows (its training data).
    """
    from detector.evaluate.runner import DetectorSpec

    if kind == "detector":
        raw = base.model_dump()
        raw["enabled"] = [target]
        for key, value in candidate.items():
            path = key.split(".") if "." in key else ["detectors", target, key]
            node = raw
            for part in path[:-1]:
                if not isinstance(node.get(part), dict):
                    raise ValueError(f"space.{key}: no such settings section {part!r}")
                node = node[part]
            if path[-1] not in node:
                raise ValueError(f"space.{key}: no such setting (known here: "
                                 f"{', '.join(sorted(node))})")
            node[path[-1]] = value
        return DetectorSpec(target, type(base).model_validate(raw), seed)
    from detector.models import kinds
    from detector.models.evaluation import ModelPlan
    from detector.models.features import FeatureSpec

    params = {k: v for k, v in candidate.items() if k not in ("windows", "lags")}
    kinds.check_params(target, params)
    features = FeatureSpec(tuple(candidate.get("windows", FeatureSpec.windows)),
                           tuple(candidate.get("lags", FeatureSpec.lags)))
    plan = ModelPlan(kind=target, params=params, spec=features, seed=seed,
                     earlier=dict(earlier or {}))
    return DetectorSpec(target, base, seed, plan)


def score(spec: Any, series: Sequence[Series], fmt: str) -> tuple[str, float]:
    from detector.evaluate import runner, summary

    scored = [runner.score_series(spec, s, lambda rows: None) for s in series]
    return objective(fmt, summary.evaluate_scored(series, scored))


def key_of(candidate: dict[str, Any]) -> str:
    return json.dumps(candidate, sort_keys=True)


def read_trials(path: Path) -> dict[str, dict[str, str]]:
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["params"]: row for row in csv.DictReader(handle)}


def append_trial(path: Path, row: dict[str, Any]) -> None:
    new = not path.is_file()
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["trial", "params", "objective", "train",
                                                    "seconds"])
        if new:
            writer.writeheader()
        writer.writerow(row)


def best_snippet(target: str, kind: str, candidate: dict[str, Any], held_out: float,
                 name: str) -> str:
    import yaml

    if kind == "detector":
        tree: dict[str, Any] = {"enabled": [target]}
        for key, value in candidate.items():
            path = key.split(".") if "." in key else ["detectors", target, key]
            node = tree
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = value
        body = yaml.safe_dump({"detector": tree}, sort_keys=False)
        return f"# iotwatch tune: {name} {held_out:.4g} on the held-out split\n{body}"
    params = " ".join(f"{k}={json.dumps(v) if isinstance(v, list) else v}"
                      for k, v in candidate.items() if k not in ("windows", "lags"))
    windows = ",".join(str(w) for w in candidate.get("windows", []))
    lags = ",".join(str(k) for k in candidate.get("lags", []))
    extra = (f" --windows {windows}" if windows else "") + (f" --lags {lags}" if lags else "")
    body = yaml.safe_dump({"model": target, "params": {k: v for k, v in candidate.items()
                                                        if k not in ("windows", "lags")},
                           **({"windows": candidate["windows"]} if "windows" in candidate else {}),
                           **({"lags": candidate["lags"]} if "lags" in candidate else {})},
                          sort_keys=False)
    return (f"# iotwatch tune: {name} {held_out:.4g} on the held-out split\n"
            f"# train it:  iotwatch train DATA --model {target} --params {params}{extra} "
            f"--out models/{target}.joblib\n{body}")


def summarize(values: Sequence[float]) -> str:
    arr = np.asarray(values, dtype=float)
    return f"{arr.min():.3g} .. {arr.max():.3g}" if len(arr) else "-"
