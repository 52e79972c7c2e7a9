"""``iotwatch tune``: grid or random search of a detector's or a model's parameters.

Writes ``DIR/trials.csv`` (appended as trials finish; a rerun skips what is there) and
``DIR/best.yaml``, and prints every trial and the best one's held-out score.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

EXIT_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Search parameters on labelled data split by files or by time "
                          "(never by shuffled rows); score each candidate on the search split, "
                          "report the best one on the held-out split.")
    parser.add_argument("data_dir", metavar="DATA", type=Path)
    parser.add_argument("--format", choices=("nab", "skab", "iotwatch"))
    parser.add_argument("--labels", type=Path, metavar="FILE")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--detector", metavar="NAME", help="a registered stream detector")
    which.add_argument("--model", metavar="KIND", help="a model kind (trained per file)")
    parser.add_argument("--space", type=Path, required=True, metavar="FILE.yaml")
    parser.add_argument("--search", choices=("grid", "random"), default="grid")
    parser.add_argument("--trials", type=int, default=20, metavar="N",
                        help="random search: candidates drawn (default %(default)s)")
    parser.add_argument("--split", choices=("files", "time"), default="files")
    parser.add_argument("--holdout", type=float, default=0.3, metavar="F",
                        help="share held out: of the files, or of each file's rows "
                        "(default %(default)s)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N")
    parser.add_argument("--seed", type=int, default=42, metavar="N")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR")


def run(args: argparse.Namespace) -> int:
    from detector.evaluate.datasets import DatasetError
    from iotwatch.cli import usage_errors

    return usage_errors("iotwatch tune", (DatasetError, ValueError, OSError), lambda: _run(args))


def _trial(target: str, kind: str, candidate: dict, base, seed: int, series, fmt: str):
    from detector.models import tune

    started = time.perf_counter()
    name, value = tune.score(tune.spec_for(target, kind, candidate, base, seed), series, fmt)
    return candidate, name, value, time.perf_counter() - started


def _run(args: argparse.Namespace) -> int:
    from concurrent.futures import ProcessPoolExecutor, as_completed

    import yaml

    from detector.engine import EngineSettings
    from detector.engine.registry import univariate_names
    from detector.evaluate import datasets
    from detector.models import kinds, tune

    if args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
    if args.detector is not None and args.detector not in univariate_names():
        raise ValueError(f"--detector {args.detector!r} is not registered "
                         f"(known: {', '.join(univariate_names())})")
    if args.model is not None and args.model not in kinds.KINDS:
        raise ValueError(f"--model {args.model!r}: known kinds {', '.join(sorted(kinds.KINDS))}")
    kind, target = ("detector", args.detector) if args.detector else ("model", args.model)
    try:
        space = yaml.safe_load(args.space.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{args.space}: not YAML ({exc})") from None
    if not isinstance(space, dict) or not space:
        raise ValueError(f"{args.space}: expected a mapping 'parameter: [values]'")
    candidates = (tune.grid(space) if args.search == "grid"
                  else tune.sample(space, args.trials, args.seed))
    base = EngineSettings()
    for candidate in candidates[:1]:
        tune.spec_for(target, kind, candidate, base, args.seed)  # a bad key fails now

    fmt = args.format or datasets.detect_format(args.data_dir)
    labels = args.labels or datasets.default_labels(args.data_dir, fmt)
    series = datasets.load(args.data_dir, fmt, labels)
    search, held = tune.split(series, args.split, args.holdout, args.seed)
    print(f"{len(candidates)} candidates; search on {len(search)} series, "
          f"held out {len(held)} ({args.split} split)", file=sys.stderr)

    args.out.mkdir(parents=True, exist_ok=True)
    trials_path = args.out / tune.TRIALS
    done = tune.read_trials(trials_path)
    todo = [c for c in candidates if tune.key_of(c) not in done]
    if len(todo) < len(candidates):
        print(f"resuming: {len(candidates) - len(todo)} trials already in {trials_path}",
              file=sys.stderr)
    started = time.monotonic()
    finished = 0
    number = len(done)

    def record(candidate, name, value, seconds):
        nonlocal finished, number
        finished += 1
        number += 1
        tune.append_trial(trials_path, {"trial": number, "params": tune.key_of(candidate),
                                        "objective": name, "train": f"{value:.6g}",
                                        "seconds": f"{seconds:.1f}"})
        done[tune.key_of(candidate)] = {"params": tune.key_of(candidate), "objective": name,
                                        "train": f"{value:.6g}"}
        elapsed = time.monotonic() - started
        eta = elapsed / finished * (len(todo) - finished)
        print(f"trial {finished}/{len(todo)}: {name} {value:.4g} {tune.key_of(candidate)} "
              f"({seconds:.0f} s, ETA {eta:.0f} s)", file=sys.stderr, flush=True)

    if args.jobs == 1:
        for candidate in todo:
            record(*_trial(target, kind, candidate, base, args.seed, search, fmt))
    else:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(_trial, target, kind, c, base, args.seed, search, fmt)
                       for c in todo]
            for future in as_completed(futures):
                record(*future.result())

    wanted = {tune.key_of(c) for c in candidates}
    rows = sorted((r for k, r in done.items() if k in wanted),
                  key=lambda r: -float(r["train"]))
    print(f"\n{'train':>10}  params")
    for r in rows:
        print(f"{float(r['train']):>10.4g}  {r['params']}")
    best = yaml.safe_load(rows[0]["params"])
    earlier = tune.heads_of(search, held) if args.split == "time" else {}
    name, held_value = tune.score(tune.spec_for(target, kind, best, base, args.seed, earlier),
                                  held, fmt)
    snippet = tune.best_snippet(target, kind, best, held_value, name)
    (args.out / tune.BEST).write_text(snippet, encoding="utf-8")
    print(f"\nbest {tune.key_of(best)}: {name} {float(rows[0]['train']):.4g} on the search "
          f"split, {held_value:.4g} held out\n{args.out / tune.BEST}:\n{snippet}")
    return 0
