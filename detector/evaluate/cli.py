"""``iotwatch evaluate``: score a detector offline on labelled data.

Heavy imports stay inside :func:`run` so ``iotwatch --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from detector.evaluate import forecasting

EXIT_USAGE = 2
FORMATS = ("nab", "skab", "iotwatch")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run a detector strictly online over labelled recordings (NAB, SKAB or the "
        "publisher's output) and report point-wise and event-wise precision/recall/F1, "
        "detection delay, false alarms per day and the NAB score, against a random baseline.")
    parser.add_argument("data_dir", metavar="DATA_DIR", type=Path,
                        help="directory of labelled data")
    parser.add_argument("--format", choices=FORMATS,
                        help="data format (default: detected from the files)")
    parser.add_argument("--labels", type=Path, metavar="FILE",
                        help="labels file: NAB windows JSON, or the publisher's labels.jsonl "
                        "(default: looked for in DATA_DIR; SKAB labels are in its files)")
    parser.add_argument("--detector", metavar="NAME",
                        help="evaluate only this registered detector, or 'random' "
                        "(default: the configured combination, reported as 'iotwatch')")
    parser.add_argument("--model", metavar="MODEL.joblib|KIND",
                        help="evaluate a trained model file (iotwatch train), or train a "
                        "model of KIND (isolation_forest, one_class_svm, kmeans, autoencoder) "
                        "on each file's unscored prefix (SKAB: first 400 rows) and evaluate it")
    parser.add_argument("--leaderboard", action="store_true",
                        help="also evaluate the online default, every single detector and "
                        "every model kind (trained per file) on the same files, and print "
                        "(and report) one table with the random baseline and, on SKAB, the "
                        "published leaderboard numbers")
    parser.add_argument("--params", nargs="*", default=[], metavar="KEY=VALUE",
                        help="with --model KIND: the model's parameters")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="detector service YAML whose 'detector:' section configures the engine")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="write per-file scores in NAB's results layout under DIR")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the summary as JSON")
    parser.add_argument("--report", type=Path, metavar="FILE",
                        help="write an HTML report with one PNG plot per file")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="files scored in parallel (default 1)")
    parser.add_argument("--seed", type=int, metavar="N",
                        help="seed for seeded detectors and the random baseline "
                        "(default: the configured seed)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    forecasting.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from detector.evaluate.datasets import DatasetError
    from detector.models.artifact import ModelError
    from iotwatch.config import ConfigError
    from iotwatch.paths import PathProblem

    try:
        return _run(args)
    except (DatasetError, ConfigError, UsageError, ModelError, PathProblem) as exc:
        for line in str(exc).splitlines():
            print(f"iotwatch evaluate: error: {line}", file=sys.stderr)
        return EXIT_USAGE


class UsageError(Exception):
    """A command-line argument that cannot be used."""


def _run(args: argparse.Namespace) -> int:
    import orjson

    from detector.evaluate import datasets, runner, summary
    from detector.evaluate.progress import Progress
    from detector.evaluate.report import write_report
    from detector.evaluate.results import write_results
    from iotwatch.paths import output_dir, output_file

    data_dir: Path = args.data_dir
    if not data_dir.is_dir():
        raise UsageError(f"DATA_DIR {data_dir} is not a directory")
    if args.jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {args.jobs}")
    # Outputs first: scoring can take minutes, and its results must have somewhere to go.
    if args.out is not None:
        output_dir(args.out, "--out")
    if args.json is not None:
        output_file(args.json, "--json")
    if args.report is not None:
        output_file(args.report, "--report")
        output_dir(args.report.parent / f"{args.report.stem}_files", "--report (its images)")
    fmt = args.format or datasets.detect_format(data_dir)
    if args.labels is not None and not args.labels.is_file():
        raise UsageError(f"--labels {args.labels}: file not found")
    labels = args.labels or datasets.default_labels(data_dir, fmt)
    spec = build_spec(args.detector, args.config, args.seed)
    try:
        forecast_settings = forecasting.settings_for(
            load_engine_settings(args.config) if args.config else None, args)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.model is not None:
        spec = model_spec(args.model, args.params, args.detector, spec)

    series = datasets.load(data_dir, fmt, labels)
    if spec.model is not None and spec.model.path is not None:
        from detector.models.evaluation import covered

        series = covered(spec.model.path, series)
    if not series:
        raise UsageError(f"{data_dir}: nothing to evaluate")
    bar = None if args.quiet else Progress(
        spec.name, files=len(series), rows=sum(s.rows for s in series))
    scored = runner.run_all(spec, series, jobs=args.jobs, progress=bar)
    if bar is not None:
        bar.finish()

    if args.out is not None:
        for s, sc in zip(series, scored, strict=True):
            write_results(args.out, spec.name, s, sc)
    result = summary.evaluate_scored(series, scored)
    random_spec = runner.DetectorSpec(runner.RANDOM, None, spec.seed)
    baseline = summary.evaluate_scored(
        series, [runner.score_series(random_spec, s, lambda rows: None) for s in series])
    spread = summary.random_spread(series)
    flag_all = summary.evaluate_flag_all(series)
    components = None
    if any(sc.parts for sc in scored):
        components = {
            name: summary.evaluate(series, [sc.parts[name][0] for sc in scored],
                                   [sc.parts[name][1] for sc in scored])
            for name in ("streams", "device")}
    report = summary.build_summary(
        detector=spec.name, fmt=fmt, data_dir=str(data_dir),
        labels=str(labels) if labels else None, seed=spec.seed, series=series, scored=scored,
        result=result, baseline=baseline,
        results_dir=str(args.out / spec.name) if args.out else None, components=components,
        spread=spread, flag_all=flag_all)
    if forecast_settings is not None:
        report["forecast"] = forecasting.forecast_summary(series, forecast_settings)
    print(summary.format_table(report))
    if forecast_settings is not None:
        print(forecasting.format_forecast(report["forecast"]))
    if args.leaderboard:
        from detector.models import leaderboard

        def contender(name: str, kind: str) -> dict:
            other = (model_spec(name, [], None, build_spec(None, args.config, args.seed))
                     if kind == "model" else
                     build_spec(None if kind == "default" else name, args.config, args.seed))
            if not args.quiet:
                print(f"leaderboard: {name}", file=sys.stderr)
            found = runner.run_all(other, series, jobs=args.jobs)
            return summary.build_summary(
                detector=other.name, fmt=fmt, data_dir=str(data_dir), labels=None,
                seed=other.seed, series=series, scored=found,
                result=summary.evaluate_scored(series, found), baseline=baseline,
                results_dir=None, components=None, spread=None, flag_all=flag_all)

        report["leaderboard"] = leaderboard.build(report, fmt, contender)
        print("\n" + leaderboard.format_table(report["leaderboard"], fmt))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2
                                           | orjson.OPT_SERIALIZE_NUMPY))
    if args.report is not None:
        write_report(args.report, report, series, scored, jobs=args.jobs)
        print(f"report: {args.report}")
    return 0


def build_spec(detector: str | None, config: Path | None, seed: int | None):
    """The detector to evaluate from --detector, --config and --seed."""
    from detector.evaluate.runner import DEFAULT_NAME, RANDOM, DetectorSpec

    if detector == RANDOM:
        # The baseline needs no engine; a --config still supplies its seed.
        configured = load_engine_settings(config).seed if config is not None else 42
        return DetectorSpec(RANDOM, None, configured if seed is None else seed)
    from detector.engine.registry import univariate_names

    known = list(univariate_names())
    if detector is not None and detector not in known:
        raise UsageError(f"--detector {detector!r} is not a registered detector "
                         f"(known: {', '.join(dict.fromkeys([*known, RANDOM]))})")
    settings = load_engine_settings(config)
    overrides: dict = {}
    if detector is not None:
        overrides["enabled"] = [detector]
    if seed is not None:
        overrides["seed"] = seed
    if overrides:
        settings = type(settings).model_validate({**settings.model_dump(), **overrides})
    return DetectorSpec(detector or DEFAULT_NAME, settings, settings.seed)


def model_spec(model: str, params: list[str], detector: str | None, spec):
    """``spec`` running the trained model (a file) or a model kind trained per file."""
    from detector.evaluate.runner import DetectorSpec
    from detector.models import kinds
    from detector.models.artifact import ModelError, read_metadata
    from detector.models.cli import parse_params
    from detector.models.evaluation import ModelPlan

    if detector is not None:
        raise UsageError("--model and --detector: pick one")
    try:
        if model in kinds.KINDS:
            plan = ModelPlan(kind=model, params=parse_params(params, kinds.KINDS[model]),
                             seed=spec.seed)
        else:
            path = Path(model)
            if params:
                raise UsageError("--params goes with --model KIND (a trained file has its own)")
            read_metadata(path)  # a missing or foreign file is refused before any work
            plan = ModelPlan(path=path, seed=spec.seed)
    except (ModelError, ValueError) as exc:
        raise UsageError(f"--model {model}: {exc}") from None
    return DetectorSpec(plan.label, spec.settings, spec.seed, plan)


def load_engine_settings(config: Path | None):
    """EngineSettings from the ``detector:`` section of ``config`` (defaults without one)."""
    from detector.engine import EngineSettings
    from iotwatch.config import ConfigError, build_config, load_config

    if config is None:
        return EngineSettings()
    if not config.is_file():
        raise UsageError(f"--config {config}: file not found")
    try:
        import detector.config  # noqa: F401  (the service file model, when it exists)
    except ImportError:
        import yaml

        raw = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        if not isinstance(raw, dict) or not isinstance(raw.get("detector"), dict):
            raise ConfigError(["(top level): expected a 'detector:' section"], str(config)) \
                from None
        try:
            return build_config(raw["detector"], EngineSettings, source=str(config))
        except ConfigError as exc:
            raise ConfigError([f"detector.{e}" for e in exc.errors], str(config)) from None
    loaded = load_config(config)
    section = getattr(loaded, "detector", None)
    if section is None:
        raise ConfigError(["(top level): expected a 'detector:' section"], str(config))
    return section
